package kafka

// AlterUserSCRAMCredentials (51): all versions kmsg and the backends share.
//
// When the listener does not authenticate (Config.Authenticates false),
// SCRAM credentials are the backends': the request is written to every
// cluster as sent (30_cluster_wide_writes.go).
//
// When it does, the proxy's own users are altered (KIP-554 semantics,
// answered by the proxy): every deletion and upsertion is checked first,
// per user, as Kafka does (an empty or unprintable name or a bad salt or
// salted password: UNACCEPTABLE_CREDENTIAL; a mechanism other than
// SCRAM-SHA-256/512: UNSUPPORTED_SASL_MECHANISM; iterations outside
// 4096..16384: UNACCEPTABLE_CREDENTIAL; the same user and mechanism twice:
// DUPLICATE_RESOURCE; deleting a credential that does not exist:
// RESOURCE_NOT_FOUND). A user whose alterations all pass has them
// committed through Config.Proposer, one fsm command each
// (PutUserCredential from the client's salted password, never a password;
// DeleteUserCredential); the user's answer is the first error. The
// proposals run off the connection's read loop: the answer's slot is
// reserved in order and filled once they are applied.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/fsm"
)

const (
	// maxSCRAMAlterations bounds the deletions plus upsertions of one
	// request the proxy commits: each is a Raft round trip.
	maxSCRAMAlterations = 1000
	// scramAlterTimeout bounds the proposals of one request.
	scramAlterTimeout = 30 * time.Second
)

func handleAlterUserSCRAMCredentials(r *request) error {
	if !r.c.s.cfg.Authenticates {
		return toEveryCluster(r)
	}
	c, start := r.c, r.start
	kreq, err := decodeRequest(r)
	if err != nil {
		return err
	}
	req := kreq.(*kmsg.AlterUserSCRAMCredentialsRequest)
	// Authorization: Alter on the cluster resource, checked before the
	// handler runs (acl_requests.go wholeNeeds).
	resp, plans := planSCRAMAlter(r.st, req)
	prop := c.s.cfg.Proposer
	if len(plans) == 0 || prop == nil {
		for _, p := range plans {
			setSCRAMResult(resp, p.user, kerr.UnknownServerError.Code, "this peer cannot change the proxy's users (no proposer)")
		}
		return c.respond(r, start, resp)
	}
	p, err := c.newPending(r, start)
	if err != nil {
		return err
	}
	corr, principal := r.corr, c.principal
	// The reader goroutine adds to wg before serve waits on it, so the
	// connection's teardown waits for this slot to be filled.
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer c.recoverPanic("user credential proposals")
		ctx, cancel := context.WithTimeout(context.Background(), scramAlterTimeout)
		defer cancel()
		go func() { // a closed connection stops what is left
			select {
			case <-c.closing:
				cancel()
			case <-ctx.Done():
			}
		}()
		for _, pl := range plans {
			for _, cmd := range pl.cmds {
				if _, err := prop.Apply(ctx, cmd); err != nil {
					code, msg := scramApplyError(err)
					setSCRAMResult(resp, pl.user, code, msg)
					break
				}
			}
		}
		// Who changed which user, never a credential: user changes are
		// rare and an operator wants each one on record.
		for _, res := range resp.Results {
			if res.ErrorCode == 0 {
				c.log.Info("proxy user credentials altered by a Kafka client", "user", res.User, "principal", principal, "client", c.clientHost)
			}
		}
		c.finish(p, encodeResponse(resp, corr), nil)
		c.kickWriter()
	}()
	return nil
}

// scramPlan is what one user's alterations commit, in order.
type scramPlan struct {
	user string
	cmds []fsm.Command
}

// planSCRAMAlter checks req against st and answers it: one result per
// user, in the order users first appear (deletions, then upsertions), with
// an error for every user whose alterations Kafka would refuse, and the
// commands of every other user (checked in sequence against st, so they
// apply unless the state changes meanwhile). It never proposes.
func planSCRAMAlter(st *fsm.State, req *kmsg.AlterUserSCRAMCredentialsRequest) (*kmsg.AlterUserSCRAMCredentialsResponse, []scramPlan) {
	resp := req.ResponseKind().(*kmsg.AlterUserSCRAMCredentialsResponse)
	type userOps struct {
		code int16
		msg  string
		cmds []fsm.Command
		seen map[string]bool // mechanisms named
	}
	users := map[string]*userOps{}
	var order []string
	op := func(name string) *userOps {
		u := users[name]
		if u == nil {
			u = &userOps{seen: map[string]bool{}}
			users[name] = u
			order = append(order, name)
		}
		return u
	}
	fail := func(u *userOps, code int16, format string, args ...any) {
		if u.code == 0 {
			u.code, u.msg = code, fmt.Sprintf(format, args...)
		}
	}
	tooMany := len(req.Deletions)+len(req.Upsertions) > maxSCRAMAlterations
	mechanism := func(u *userOps, name string, m int8) string {
		mech := scramMechanismName(m)
		if mech == "" {
			fail(u, kerr.UnsupportedSaslMechanism.Code, "Unknown SCRAM mechanism %d", m)
			return ""
		}
		if u.seen[mech] {
			fail(u, kerr.DuplicateResource.Code, "A user credential cannot be altered twice in the same request")
		}
		u.seen[mech] = true
		return mech
	}
	checkName := func(u *userOps, name string) bool {
		if name == "" {
			fail(u, kerr.UnacceptableCredential.Code, "Username must not be empty")
			return false
		}
		if err := fsm.ValidUserName(name); err != nil {
			fail(u, kerr.UnacceptableCredential.Code, "%v", err)
			return false
		}
		return true
	}
	for _, d := range req.Deletions {
		u := op(d.Name)
		if tooMany {
			continue
		}
		mech := mechanism(u, d.Name, d.Mechanism)
		if checkName(u, d.Name) && mech != "" {
			u.cmds = append(u.cmds, &fsm.DeleteUserCredential{Name: d.Name, Mechanism: mech})
		}
	}
	for _, up := range req.Upsertions {
		u := op(up.Name)
		if tooMany {
			continue
		}
		mech := mechanism(u, up.Name, up.Mechanism)
		if !checkName(u, up.Name) || mech == "" {
			continue
		}
		if up.Iterations < fsm.MinScramIterations {
			fail(u, kerr.UnacceptableCredential.Code, "Too few iterations: %d, at least %d", up.Iterations, fsm.MinScramIterations)
			continue
		}
		if up.Iterations > fsm.MaxScramIterations {
			fail(u, kerr.UnacceptableCredential.Code, "Too many iterations: %d, at most %d", up.Iterations, fsm.MaxScramIterations)
			continue
		}
		cred, err := fsm.CredentialFromSaltedPassword(mech, up.SaltedPassword, up.Salt, int(up.Iterations))
		if err != nil {
			fail(u, kerr.UnacceptableCredential.Code, "%v", err)
			continue
		}
		u.cmds = append(u.cmds, &fsm.PutUserCredential{Name: up.Name, Credential: cred})
	}
	var plans []scramPlan
	next := st
	for _, name := range order {
		u := users[name]
		res := kmsg.NewAlterUserSCRAMCredentialsResponseResult()
		res.User = name
		switch {
		case tooMany:
			res.ErrorCode = kerr.PolicyViolation.Code
			res.ErrorMessage = kmsg.StringPtr(fmt.Sprintf("the request alters %d credentials; the proxy takes at most %d per request", len(req.Deletions)+len(req.Upsertions), maxSCRAMAlterations))
		case u.code != 0:
			res.ErrorCode, res.ErrorMessage = u.code, kmsg.StringPtr(u.msg)
		default:
			// Check the user's commands in sequence, so a deletion of
			// a credential that is not there is refused before any of
			// the user's alterations is committed.
			try := next
			var err error
			for _, cmd := range u.cmds {
				var ns *fsm.State
				if ns, err = try.Next(cmd, try.Index); err != nil {
					break
				}
				try = ns
			}
			if err != nil {
				res.ErrorCode, res.ErrorMessage = scramStateError(err)
				break
			}
			next = try
			plans = append(plans, scramPlan{user: name, cmds: u.cmds})
		}
		resp.Results = append(resp.Results, res)
	}
	return resp, plans
}

// scramStateError is the Kafka error for a command the state refuses.
func scramStateError(err error) (int16, *string) {
	if errors.Is(err, fsm.ErrNotFound) {
		return kerr.ResourceNotFound.Code, kmsg.StringPtr("Attempt to delete a user credential that does not exist")
	}
	return kerr.UnacceptableCredential.Code, kmsg.StringPtr(err.Error())
}

// scramApplyError is the Kafka error for a proposal that failed: what the
// state refused (it changed since the check), or a control plane that did
// not commit in time (retriable).
func scramApplyError(err error) (int16, string) {
	switch {
	case errors.Is(err, fsm.ErrNotFound):
		return kerr.ResourceNotFound.Code, "Attempt to delete a user credential that does not exist"
	case errors.Is(err, fsm.ErrInvalid), errors.Is(err, fsm.ErrConflict):
		return kerr.UnacceptableCredential.Code, err.Error()
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return kerr.RequestTimedOut.Code, "the proxy's control plane did not commit the change in time: " + err.Error()
	}
	return kerr.UnknownServerError.Code, err.Error()
}

func setSCRAMResult(resp *kmsg.AlterUserSCRAMCredentialsResponse, user string, code int16, msg string) {
	for i := range resp.Results {
		if r := &resp.Results[i]; r.User == user && r.ErrorCode == 0 {
			r.ErrorCode, r.ErrorMessage = code, kmsg.StringPtr(msg)
			return
		}
	}
}

// scramMechanismName is the fsm mechanism of Kafka's ScramMechanism type
// (KIP-554: 1 SCRAM-SHA-256, 2 SCRAM-SHA-512), "" for another.
func scramMechanismName(m int8) string {
	switch m {
	case 1:
		return fsm.SASLScramSHA256
	case 2:
		return fsm.SASLScramSHA512
	}
	return ""
}

// scramMechanismType is Kafka's ScramMechanism type of an fsm mechanism,
// 0 (UNKNOWN) for PLAIN.
func scramMechanismType(m string) int8 {
	switch m {
	case fsm.SASLScramSHA256:
		return 1
	case fsm.SASLScramSHA512:
		return 2
	}
	return 0
}
