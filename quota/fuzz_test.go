package quota

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

// The node decodes Report and Grants from peer RPC bodies (JSON); whatever
// arrives, the Limiter and Allocator must not panic, and shares must stay
// finite and non-negative.

func FuzzLimiterApply(f *testing.F) {
	ok, _ := json.Marshal(grant(1, 1, 1, 500))
	f.Add(ok)
	f.Add([]byte(`{"epoch":1,"seq":2,"boot":7,"rseq":1,"lease_ms":2000,"echo":true,"keys":[{"t":"orders","d":"produce","s":1e308,"q":1e-300}]}`))
	f.Add([]byte(`{"epoch":1,"seq":3,"boot":7,"rseq":1,"lease_ms":1,"keys":[{"t":"orders","d":"fetch","s":-1}]}`))
	f.Add([]byte(`{"keys":[{"t":"","d":"sideways"}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var g Grants
		if json.Unmarshal(body, &g) != nil {
			return
		}
		l := newTestLimiter(t, DefaultConfig(), func() {})
		l.Charge(tk, 100, t0)
		l.Report(1, t0)
		_ = l.Apply(g, t0.Add(time.Millisecond))
		for _, k := range []Key{tk, tkFetch} {
			th := l.Charge(k, 1000, t0.Add(2*time.Millisecond))
			if th.Delay < 0 || th.Millis() < 0 || th.Millis() > 1000 {
				t.Fatalf("throttle %+v", th)
			}
			if st, ok := l.Status(k, t0.Add(2*time.Millisecond)); ok && !(st.Share >= MinRate && !math.IsInf(st.Share, 0)) {
				t.Fatalf("share %v", st.Share)
			}
			if c := l.FetchCap(k, 1<<20, t0); c < 1 || c > 1<<20 {
				t.Fatalf("fetch cap %d", c)
			}
		}
	})
}

func FuzzAllocatorReport(f *testing.F) {
	ok, _ := json.Marshal(Report{Boot: 1, Seq: 1, Epoch: 1, Peers: 3, Keys: []KeyReport{{Topic: tk.Topic, Dir: tk.Dir, Wants: 900, Use: 800, Has: 500, HasSeq: 1, Sat: true, Quota: aQ}}})
	f.Add(ok)
	f.Add([]byte(`{"boot":1,"seq":9,"epoch":99,"n":1,"urgent":true,"keys":[{"t":"orders","d":"produce","w":1e308,"u":1e308,"h":1e308,"q":1e308}]}`))
	f.Add([]byte(`{"boot":1,"seq":1,"keys":[{"t":"orders","d":"produce","w":-5}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var r Report
		if json.Unmarshal(body, &r) != nil {
			return
		}
		a := newTestAllocator(t, DefaultConfig(), 1, 3)
		ps := newPeers(3, 1)
		round(t, a, ps, t0, []float64{1000, 1000, 1000}, true)
		check := func(gs ...Grants) {
			for _, g := range gs {
				for _, kg := range g.Keys {
					if !(kg.Share >= 0) || math.IsInf(kg.Share, 0) {
						t.Fatalf("grant %+v", kg)
					}
				}
			}
		}
		reply, others, _ := a.Report(1, r, t0.Add(time.Millisecond))
		check(reply)
		for _, g := range others {
			check(g)
		}
		for _, g := range a.Allocate(t0.Add(300 * time.Millisecond)) {
			check(g)
		}
		a.PeerDead(PeerID(r.Seq%4), t0.Add(10*time.Second))
		for _, g := range a.Allocate(t0.Add(11 * time.Second)) {
			check(g)
		}
	})
}
