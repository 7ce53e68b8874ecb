package kafka

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestTxnVPID(t *testing.T) {
	// The largest idempotent virtual id (peer id + 1 in bits 40-55) stays
	// below bit 56, so the two kinds never meet.
	if idem := int64(1<<16-1)<<vpidPeerShift | vpidLowMask; idem>>txnVPIDBit != 0 {
		t.Fatalf("idempotent virtual id %#x reaches bit %d", idem, txnVPIDBit)
	}
	ids := map[int64]string{}
	for _, txn := range []string{"", "a", "b", "txn-west-only", "eos-proxy-txn", string(make([]byte, 1000))} {
		id := txnVPID(txn)
		if id != txnVPID(txn) {
			t.Fatalf("txnVPID(%q) differs between calls", txn)
		}
		if id < 0 || id>>txnVPIDBit != 1 {
			t.Fatalf("txnVPID(%q) = %#x: want bit %d set and nothing above", txn, id, txnVPIDBit)
		}
		if prev, ok := ids[id]; ok {
			t.Fatalf("txnVPID(%q) = txnVPID(%q)", txn, prev)
		}
		ids[id] = txn
	}
}

func TestCapFeatures(t *testing.T) {
	in := []kmsg.ApiVersionsResponseFinalizedFeature{
		{Name: "metadata.version", MinVersionLevel: 21, MaxVersionLevel: 21},
		{Name: "transaction.version", MinVersionLevel: 2, MaxVersionLevel: 2},
	}
	out := capFeatures(in)
	if out[1].MaxVersionLevel != 1 || out[1].MinVersionLevel != 1 || out[0].MaxVersionLevel != 21 {
		t.Fatalf("capped features %+v", out)
	}
	if in[1].MaxVersionLevel != 2 {
		t.Fatal("capFeatures changed the backend's own slice")
	}
	low := []kmsg.ApiVersionsResponseFinalizedFeature{{Name: "transaction.version", MinVersionLevel: 1, MaxVersionLevel: 1}}
	if got := capFeatures(low); &got[0] != &low[0] {
		t.Fatal("capFeatures copied a slice it did not change")
	}
}

func TestOngoingTxn(t *testing.T) {
	for state, want := range map[string]bool{"Ongoing": true, "PrepareCommit": true, "PrepareAbort": true,
		"Empty": false, "CompleteCommit": false, "CompleteAbort": false, "Dead": false, "": false} {
		if ongoingTxn(state) != want {
			t.Errorf("ongoingTxn(%q) = %v", state, !want)
		}
	}
}
