package fsm

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// TLS and SASL towards a backend cluster (Cluster.TLS, Cluster.SASL):
// validation and the payload version of PutCluster that carries them.

// maxURLLen bounds an OAuth token endpoint URL.
const maxURLLen = 2048

// validateClusterTLS checks a cluster's TLS settings on their own (nil is
// no TLS).
func validateClusterTLS(what string, t *ClusterTLS) error {
	if t == nil {
		return nil
	}
	if err := validText(what+" tls server_name", t.ServerName, maxTextLen); err != nil {
		return err
	}
	for _, f := range []struct{ what, path string }{
		{"tls ca_file", t.CAFile}, {"tls cert_file", t.CertFile}, {"tls key_file", t.KeyFile},
	} {
		if err := validFile(what+" "+f.what, f.path); err != nil {
			return err
		}
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return fmt.Errorf("%w: %s tls needs both a cert_file and a key_file (a client certificate), or neither", ErrInvalid, what)
	}
	return nil
}

// validateClusterSASL checks a cluster's SASL settings on their own (nil
// is no SASL): the mechanism, and exactly the fields it takes.
func validateClusterSASL(what string, s *ClusterSASL) error {
	if s == nil {
		return nil
	}
	for _, f := range []struct{ what, path string }{
		{"sasl password_file", s.PasswordFile}, {"sasl token_file", s.TokenFile}, {"sasl client_secret_file", s.ClientSecretFile},
	} {
		if err := validFile(what+" "+f.what, f.path); err != nil {
			return err
		}
	}
	for _, f := range []struct{ what, s string }{
		{"sasl username", s.Username}, {"sasl client_id", s.ClientID}, {"sasl scope", s.Scope},
	} {
		if err := validText(what+" "+f.what, f.s, maxTextLen); err != nil {
			return err
		}
	}
	oauth := s.TokenFile != "" || s.TokenEndpoint != "" || s.ClientID != "" || s.ClientSecretFile != "" || s.Scope != ""
	switch s.Mechanism {
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		if s.Username == "" || s.PasswordFile == "" {
			return fmt.Errorf("%w: %s sasl %s needs a username and a password_file", ErrInvalid, what, s.Mechanism)
		}
		if oauth {
			return fmt.Errorf("%w: %s sasl %s takes a username and a password_file only; token_file, token_endpoint, client_id, client_secret_file and scope are for %s", ErrInvalid, what, s.Mechanism, SASLOAuthBearer)
		}
	case SASLOAuthBearer:
		if s.Username != "" || s.PasswordFile != "" {
			return fmt.Errorf("%w: %s sasl %s takes no username or password_file; give a token_file, or a token_endpoint with client_id and client_secret_file", ErrInvalid, what, s.Mechanism)
		}
		switch {
		case s.TokenFile != "" && (s.TokenEndpoint != "" || s.ClientID != "" || s.ClientSecretFile != "" || s.Scope != ""):
			return fmt.Errorf("%w: %s sasl %s: give either a token_file or a token_endpoint (with client_id, client_secret_file, scope), not both", ErrInvalid, what, s.Mechanism)
		case s.TokenFile != "":
		case s.TokenEndpoint == "" || s.ClientID == "" || s.ClientSecretFile == "":
			return fmt.Errorf("%w: %s sasl %s needs a token_file, or a token_endpoint with a client_id and a client_secret_file", ErrInvalid, what, s.Mechanism)
		default:
			if err := validTokenEndpoint(what, s.TokenEndpoint); err != nil {
				return err
			}
		}
	case "":
		return fmt.Errorf("%w: %s sasl needs a mechanism (%s, %s, %s or %s)", ErrInvalid, what, SASLPlain, SASLScramSHA256, SASLScramSHA512, SASLOAuthBearer)
	default:
		if err := validText(what+" sasl mechanism", s.Mechanism, maxTextLen); err != nil {
			return err
		}
		return fmt.Errorf("%w: %s sasl mechanism %q is not one of %s, %s, %s, %s", ErrInvalid, what, s.Mechanism, SASLPlain, SASLScramSHA256, SASLScramSHA512, SASLOAuthBearer)
	}
	return nil
}

// validTokenEndpoint accepts an https URL, or an http one on a loopback
// host (a local token helper or a test): the client secret travels in it.
func validTokenEndpoint(what, s string) error {
	if err := validText(what+" sasl token_endpoint", s, maxURLLen); err != nil {
		return err
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" {
		return fmt.Errorf("%w: %s sasl token_endpoint %q is not an absolute http(s) URL without user info or fragment", ErrInvalid, what, s)
	}
	switch u.Scheme {
	case "https":
	case "http":
		host := u.Hostname()
		ip := net.ParseIP(host)
		if !strings.EqualFold(host, "localhost") && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("%w: %s sasl token_endpoint %q: http is only allowed on a loopback host; the client secret travels in the request, use https", ErrInvalid, what, s)
		}
	default:
		return fmt.Errorf("%w: %s sasl token_endpoint %q: scheme must be https (or http on loopback)", ErrInvalid, what, s)
	}
	return nil
}

// clusterPayloadVersion is the oldest PutCluster payload version that
// carries c: 4 with a failback drain (command set 8), 3 with TLS or SASL
// (command set 6), 2 with down/up-after (command set 5), else 1, whose
// JSON every build decodes.
func clusterPayloadVersion(c *PutCluster) uint8 {
	switch {
	case c.Cluster.FailbackDrainMS != 0:
		return 4
	case c.Cluster.TLS != nil || c.Cluster.SASL != nil:
		return 3
	case c.Cluster.DownAfterMS != 0 || c.Cluster.UpAfterMS != 0:
		return 2
	}
	return 1
}
