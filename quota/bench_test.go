package quota

import (
	"testing"
	"time"
)

// The data plane's cost per request: Charge on a key with a quota (the
// note measured 59 ns for a mutex debt bucket and 189 ns for x/time/rate's
// ReserveN), on a key without one, and FetchCap.
func BenchmarkCharge(b *testing.B) {
	l, err := NewLimiter(DefaultConfig(), 1, nil)
	if err != nil {
		b.Fatal(err)
	}
	l.SetQuotas(map[Key]int64{tk: 100 << 20}, 3, t0)
	free := Key{Topic: "free", Dir: Produce}
	now := t0
	b.Run("quota", func(b *testing.B) {
		for b.Loop() {
			now = now.Add(time.Microsecond)
			l.Charge(tk, 1024, now)
		}
	})
	b.Run("no-quota", func(b *testing.B) {
		for b.Loop() {
			l.Charge(free, 1024, now)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				l.Charge(tk, 1024, time.Now())
			}
		})
	})
	b.Run("fetch-cap", func(b *testing.B) {
		for b.Loop() {
			l.FetchCap(tk, 1<<20, now)
		}
	})
}

// The leader's cost for 1000 keys over 30 peers: a full round (every Ta)
// and a report that changes 1 % of its keys and triggers a round over
// those (the note estimated a full round as sub-millisecond).
func BenchmarkAllocate(b *testing.B) {
	const peers, keys = 30, 1000
	setup := func(b *testing.B) (*Allocator, []Report, time.Time) {
		a, err := NewAllocator(DefaultConfig(), 1, t0)
		if err != nil {
			b.Fatal(err)
		}
		quotas := map[Key]int64{}
		for k := range keys {
			quotas[Key{Topic: "t" + u(k), Dir: Produce}] = 100 << 20
		}
		a.SetQuotas(quotas, peers, t0)
		reports := make([]Report, peers)
		for p := range peers {
			r := Report{Boot: 1, Seq: 1, Epoch: 1, Peers: peers}
			for k := range quotas {
				r.Keys = append(r.Keys, KeyReport{Topic: k.Topic, Dir: k.Dir, Wants: float64(p+1) * 1e6, Use: float64(p+1) * 5e5,
					Has: 1e6, Sat: p%2 == 0, Quota: 100 << 20})
			}
			if _, _, err := a.Report(PeerID(p), r, t0); err != nil {
				b.Fatal(err)
			}
			reports[p] = r
		}
		a.Allocate(t0)
		return a, reports, t0
	}
	b.Run("full-round", func(b *testing.B) {
		a, _, now := setup(b)
		for b.Loop() {
			now = now.Add(time.Millisecond)
			a.full, a.dirty = true, true
			a.Allocate(now)
		}
	})
	b.Run("report", func(b *testing.B) {
		a, reports, now := setup(b)
		i := 0
		for b.Loop() {
			now = now.Add(8 * time.Millisecond) // 30 peers reporting 4 times a second
			p := i % peers
			r := reports[p]
			r.Seq++
			for k := range keys / 100 {
				r.Keys[(i+k*97)%keys].Wants *= 1.5
			}
			reply, _, err := a.Report(PeerID(p), r, now)
			if err != nil {
				b.Fatal(err)
			}
			applied := make(map[Key]float64, len(reply.Keys))
			for _, kg := range reply.Keys {
				applied[kg.Key()] = kg.Share
			}
			for j := range r.Keys { // the peer applies the reply and reports it next time
				if sh, ok := applied[r.Keys[j].Key()]; ok {
					r.Keys[j].Has, r.Keys[j].HasSeq = sh, reply.Seq
				}
			}
			reports[p] = r
			i++
		}
	})
}

func u(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}
