package node

// The admin API of online offset resets (issue 10 "Interface"; the driver
// is offset_reset.go, the target resolution groups.go). A reset's targets
// are resolved on the peer that took the request (it serves every backend
// cluster through its own data plane) and written with the job, so what
// will be applied is shown before it is; a dry run answers them without
// writing anything.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/internal/adminapi"
)

// parseResetTo reads "to" (adminapi.ResetToJSON writes it): "earliest", "latest", or an object with exactly
// one of timestamp, offset, shift.
func parseResetTo(raw json.RawMessage) (fsm.ResetTo, error) {
	const want = `"to" must be "earliest", "latest", {"timestamp": MS}, {"offset": N} or {"shift": N}`
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return fsm.ResetTo{}, badRequest("%s", want)
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return fsm.ResetTo{}, badRequest("%s: %v", want, err)
		}
		switch s {
		case fsm.ResetToEarliest, fsm.ResetToLatest:
			return fsm.ResetTo{Kind: s}, nil
		}
		return fsm.ResetTo{}, badRequest("%s, not %q", want, s)
	}
	var m map[string]json.Number
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil || len(m) != 1 {
		return fsm.ResetTo{}, badRequest("%s", want)
	}
	for k, v := range m {
		n, err := v.Int64()
		if err != nil {
			return fsm.ResetTo{}, badRequest("%s: %q is not an integer", want, v.String())
		}
		switch k {
		case fsm.ResetToTimestamp, fsm.ResetToOffset, fsm.ResetToShift:
			to := fsm.ResetTo{Kind: k, Value: n}
			if k != fsm.ResetToShift && n < 0 {
				return fsm.ResetTo{}, badRequest("%q must not be negative, not %d", k, n)
			}
			return to, nil
		}
		return fsm.ResetTo{}, badRequest("%s, not %q", want, k)
	}
	return fsm.ResetTo{}, badRequest("%s", want)
}

func (n *Node) postOffsetReset(w http.ResponseWriter, r *http.Request) error {
	group := r.PathValue("group")
	var b adminapi.OffsetResetRequest
	if err := decodeBody(r, &b); err != nil {
		return err
	}
	to, err := parseResetTo(b.To)
	if err != nil {
		return err
	}
	if len(b.Topics) == 0 {
		return badRequest(`the body needs "topics": [TOPIC, ...]`)
	}
	if err := n.recheckRefusal(r.Context(), func(st *fsm.State) error {
		if j, ok := st.OffsetReset(group); ok && !j.State.Terminal() && !b.DryRun {
			return fmt.Errorf("%w: group %q already has a %s offset reset; wait for it to end (GET /v1/groups/%s/offset-resets)", fsm.ErrConflict, group, j.State, group)
		}
		return nil
	}); err != nil {
		return err
	}
	targets, err := n.resolveResetTargets(r.Context(), group, b.Topics, b.Partitions, to)
	if err != nil {
		return err
	}
	topics := slices.Clone(b.Topics)
	slices.Sort(topics)
	topics = slices.Compact(topics)
	if b.DryRun {
		writeJSON(w, http.StatusOK, adminapi.OffsetResetDryRun{Group: group, Topics: topics, To: to, DryRun: true, Targets: targets})
		return nil
	}
	cmd := &fsm.StartOffsetReset{Group: group, Topics: topics, To: to, Targets: targets, At: time.Now().UnixMilli()}
	return n.write(w, r, cmd, http.StatusAccepted, func(a fsm.Applied) any {
		_ = n.WaitIndex(r.Context(), a.Index)
		if j, ok := n.fsm.State().OffsetReset(group); ok {
			return viewOffsetReset(*j)
		}
		return map[string]string{"group": group}
	})
}

// viewOffsetReset is a job as the API shows it: lists never null.
func viewOffsetReset(j fsm.OffsetReset) fsm.OffsetReset {
	if j.Members == nil {
		j.Members = []fsm.ResetMember{}
	}
	if j.Targets == nil {
		j.Targets = []fsm.ResetTarget{}
	}
	return j
}

func (n *Node) getOffsetReset(w http.ResponseWriter, r *http.Request) error {
	st, err := n.readState(r)
	if err != nil {
		return err
	}
	group := r.PathValue("group")
	j, ok := st.OffsetReset(group)
	if !ok {
		return notFound("group %q has no offset reset; POST /v1/groups/%s/offset-resets starts one", group, group)
	}
	writeJSON(w, http.StatusOK, viewOffsetReset(*j))
	return nil
}
