package node

import (
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// TestConsoleAssets: on a peer with tokens the console's static files are
// served without one, with the headers that keep them to their origin,
// while /v1 still needs a token; writes to /ui/ are not served.
func TestConsoleAssets(t *testing.T) {
	tokens := filepath.Join(t.TempDir(), "tokens")
	writeFile(t, tokens, "read "+tokRead+"\n")
	n := startSoloWith(t, func(c *Config) { c.AdminTokensFile = tokens })
	base := "http://" + n.AdminAddr()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range []struct {
		method, path string
		status       int
		ctype, body  string
	}{
		{"GET", "/ui/", 200, "text/html", "<title>Switchyard console</title>"},
		{"GET", "/ui/app.js", 200, "javascript", "sessionStorage"},
		{"GET", "/ui/app.css", 200, "text/css", "--accent"},
		{"GET", "/ui", 301, "", ""},
		{"GET", "/ui/missing.js", 404, "", ""},
		{"POST", "/ui/", 405, "", ""},
		{"GET", "/v1/status", 401, "application/json", "bearer token"},
	} {
		req, _ := http.NewRequest(tc.method, base+tc.path, nil)
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.Contains(resp.Header.Get("Content-Type"), tc.ctype) || !strings.Contains(string(b), tc.body) {
			t.Errorf("%s %s: %d %q %.80q; want %d %q %q", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), b, tc.status, tc.ctype, tc.body)
		}
		if tc.status == 200 {
			h := resp.Header
			if !strings.Contains(h.Get("Content-Security-Policy"), "default-src 'self'") || h.Get("X-Frame-Options") != "DENY" || h.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("%s: security headers %v", tc.path, h)
			}
		}
		if tc.path == "/ui" && resp.Header.Get("Location") != "/ui/" {
			t.Errorf("/ui redirects to %q", resp.Header.Get("Location"))
		}
	}
}
