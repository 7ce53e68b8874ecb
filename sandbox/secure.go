package sandbox

// The secure sandbox (`switchyard dev --secure`): TLS from a CA generated
// for the session, SASL SCRAM-SHA-512 and PLAIN on the peers' listeners and
// on the backends, and one user allowed everything, so a newcomer can try
// SASL_SSL with any client in one command.

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/internal/devpki"
	"github.com/switchyard-proxy/switchyard/kafka"
)

// Secure is what a secure sandbox's clients need: the CA that signed the
// peers' certificates, and a user with its password file.
type Secure struct {
	// CAFile is the PEM CA certificate clients trust.
	CAFile string
	// User and PasswordFile are a SASL user (SCRAM-SHA-512 and PLAIN)
	// that the sandbox's ACLs allow everything.
	User         string
	PasswordFile string
	// ClientCertFile and ClientKeyFile are a client certificate the CA
	// signed for User (for mutual TLS; the listener does not require one).
	ClientCertFile, ClientKeyFile string
	// Dir holds these files and the peers' and backends' own.
	Dir string

	password string
	tls      *tls.Config
}

// SecureUser is the secure sandbox's user.
const SecureUser = "dev"

// backendUser is the proxy's own service account on the secure sandbox's
// backends.
const backendUser = "switchyard"

// secureSetup is the secure sandbox's material, made before anything
// starts: certificates and secrets in dir, the backends' options, the
// listener settings and the commands that define the user and its rules.
type secureSetup struct {
	info        *Secure
	kfakeOpts   []kfake.Opt
	listener    kafka.Security
	clusterTLS  *fsm.ClusterTLS
	clusterSASL *fsm.ClusterSASL
	commands    []fsm.Command
}

func newSecureSetup(dir string) (*secureSetup, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ca, err := devpki.NewCA("switchyard dev CA")
	if err != nil {
		return nil, err
	}
	server, err := ca.Issue("switchyard dev", "127.0.0.1", "localhost", "::1")
	if err != nil {
		return nil, err
	}
	files, err := ca.WriteFiles(dir, "server", server)
	if err != nil {
		return nil, err
	}
	client, err := ca.Issue(SecureUser)
	if err != nil {
		return nil, err
	}
	cfiles, err := ca.WriteFiles(dir, "client", client)
	if err != nil {
		return nil, err
	}
	serverCert, err := server.TLS()
	if err != nil {
		return nil, err
	}
	userPW, backendPW := randomSecret(), randomSecret()
	pwFile := filepath.Join(dir, "dev.password")
	backendPWFile := filepath.Join(dir, "backend.password")
	for f, pw := range map[string]string{pwFile: userPW, backendPWFile: backendPW} {
		if err := os.WriteFile(f, []byte(pw+"\n"), 0o600); err != nil {
			return nil, err
		}
	}
	s := &secureSetup{
		info: &Secure{
			CAFile: files.CA, User: SecureUser, PasswordFile: pwFile,
			ClientCertFile: cfiles.Cert, ClientKeyFile: cfiles.Key, Dir: dir,
			password: userPW,
			tls:      &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12},
		},
		kfakeOpts: []kfake.Opt{
			kfake.TLS(&tls.Config{Certificates: []tls.Certificate{serverCert}, MinVersion: tls.VersionTLS12}),
			kfake.EnableSASL(),
			kfake.Superuser(fsm.SASLScramSHA512, backendUser, backendPW),
			kfake.Superuser(fsm.SASLPlain, backendUser, backendPW),
		},
		listener: kafka.Security{
			TLSCertFile:    files.Cert,
			TLSKeyFile:     files.Key,
			SASLMechanisms: []string{fsm.SASLScramSHA512, fsm.SASLPlain},
		},
		clusterTLS:  &fsm.ClusterTLS{CAFile: files.CA},
		clusterSASL: &fsm.ClusterSASL{Mechanism: fsm.SASLScramSHA512, Username: backendUser, PasswordFile: backendPWFile},
	}
	for _, mech := range []string{fsm.SASLScramSHA512, fsm.SASLPlain} {
		salt := make([]byte, 32)
		rand.Read(salt)
		cred, err := fsm.DeriveCredential(mech, userPW, salt, fsm.MinScramIterations)
		if err != nil {
			return nil, err
		}
		s.commands = append(s.commands, &fsm.PutUserCredential{Name: SecureUser, Credential: cred})
	}
	// The user may do everything: one allow rule per resource type, which
	// `switchyard ctl acls list` shows and an operator can narrow.
	acls := AllowAll("User:" + SecureUser)
	s.commands = append(s.commands, &fsm.CreateACLs{ACLs: acls})
	return s, nil
}

// AllowAll is the rules that allow principal everything: every topic,
// group and transactional id, and the cluster.
func AllowAll(principal string) []fsm.ACL {
	var out []fsm.ACL
	for _, r := range []struct{ typ, name string }{
		{fsm.ResourceTopic, "*"}, {fsm.ResourceGroup, "*"}, {fsm.ResourceTransactionalID, "*"}, {fsm.ResourceCluster, fsm.ClusterResourceName},
	} {
		out = append(out, fsm.ACL{Principal: principal, Host: "*", ResourceType: r.typ, ResourceName: r.name,
			Pattern: fsm.PatternLiteral, Operation: fsm.OpAll, Permission: fsm.PermissionAllow})
	}
	return out
}

// randomSecret is a 24-byte random password, base64url-encoded.
func randomSecret() string {
	b := make([]byte, 24)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// TLSConfig is a client TLS configuration trusting the sandbox's CA.
func (s *Secure) TLSConfig() *tls.Config { return s.tls.Clone() }

// ClientOpts are the franz-go options that connect to the sandbox's
// peers: TLS and SCRAM-SHA-512 as the sandbox's user when the sandbox is
// secure, else Config.ClientOpts.
func (sb *Sandbox) ClientOpts() []kgo.Opt {
	if sb.Secure == nil {
		return sb.clientOpts
	}
	return []kgo.Opt{
		kgo.DialTLSConfig(sb.Secure.tls.Clone()),
		kgo.SASL(scram.Auth{User: sb.Secure.User, Pass: sb.Secure.password}.AsSha512Mechanism()),
	}
}

// KcatArgs are kcat's arguments for the sandbox's security settings (the
// password read from its file by the shell).
func (s *Secure) KcatArgs() string {
	return fmt.Sprintf("-X security.protocol=SASL_SSL -X sasl.mechanisms=SCRAM-SHA-512 -X sasl.username=%s -X sasl.password=$(cat %s) -X ssl.ca.location=%s",
		s.User, s.PasswordFile, s.CAFile)
}
