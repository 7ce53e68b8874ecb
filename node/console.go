package node

import (
	"embed"
	"io/fs"
	"net/http"
)

// The management console (docs/console.md): static HTML, CSS and JavaScript
// compiled into the binary and served on the admin listener at /ui/. The
// pages call the /v1 JSON API from the browser with the operator's token
// (kept in sessionStorage, sent as Authorization: Bearer), so the assets
// themselves hold no data and need no token: /ui/ is open like /healthz.
// No cookie ever authenticates a request, which leaves nothing for a
// cross-site request to ride on (no CSRF surface).

//go:embed ui
var consoleFiles embed.FS

// consoleRoute is the console's route pattern (metrics label, role table).
const consoleRoute = "GET /ui/"

// consoleHandler serves the embedded assets under /ui/ with headers that
// keep the pages to their own origin: no framing, no inline or foreign
// scripts, no MIME sniffing, no referrer leaking a peer's address.
func (n *Node) consoleHandler() apiHandler {
	sub, err := fs.Sub(consoleFiles, "ui")
	if err != nil {
		panic("node: the embedded console is missing: " + err.Error()) // fixed at build time
	}
	files := http.StripPrefix("/ui/", http.FileServerFS(sub))
	return func(w http.ResponseWriter, r *http.Request) error {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
		return nil
	}
}
