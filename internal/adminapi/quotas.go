package adminapi

import "github.com/switchyard-proxy/switchyard/fsm"

// Quotas: GET /v1/quotas, GET|PUT /v1/quotas/{topic} and the prefix rules
// (docs/admin-api.md "Quotas").

// QuotaList is GET /v1/quotas.
type QuotaList struct {
	Quotas []fsm.Quota `json:"quotas"`
}

// QuotaView is GET /v1/quotas/{topic}: the governing rule with how the
// live peers share it now and the rates they measure.
type QuotaView struct {
	fsm.Quota
	Shares      []QuotaShare `json:"shares"`
	ProduceRate float64      `json:"produce_rate_bytes_per_sec"`
	FetchRate   float64      `json:"fetch_rate_bytes_per_sec"`
}

// QuotaShare is one peer's share of one direction of a quota (soft state,
// asked of each peer).
type QuotaShare struct {
	Peer      string  `json:"peer"`
	ID        int32   `json:"id"`
	Direction string  `json:"direction"`
	Share     float64 `json:"share_bytes_per_sec"`
	Quota     float64 `json:"quota_bytes_per_sec"`
	Rate      float64 `json:"rate_bytes_per_sec"`
	Wants     float64 `json:"wants_bytes_per_sec"`
	Mode      string  `json:"mode"`
	Saturated bool    `json:"saturated"`
	LeaseMS   int64   `json:"lease_left_ms"`
}

// QuotaBody is the PUT body of a quota rule; both rates are always sent,
// as the PUT replaces the rule (0 is unlimited).
type QuotaBody struct {
	ProduceBytesPerSec int64 `json:"produce_bytes_per_sec"`
	FetchBytesPerSec   int64 `json:"fetch_bytes_per_sec"`
}
