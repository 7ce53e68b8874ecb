package kafka

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// conformanceDoc is the conformance note, one table row per API key.
const conformanceDoc = "../docs/conformance.md"

// conformanceRow is one key's row: Key | Name | Served | Versions |
// Rewritten | Routed to | Why not served.
type conformanceRow struct {
	key                                           int16
	name, served, versions, rewritten, route, why string
}

// readConformanceRows parses the rows of the doc's key table: table lines
// whose first cell is a number.
func readConformanceRows(t *testing.T) []conformanceRow {
	t.Helper()
	b, err := os.ReadFile(conformanceDoc)
	if err != nil {
		t.Fatal(err)
	}
	var rows []conformanceRow
	for i, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "|") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		key, err := strconv.ParseInt(strings.TrimSpace(cells[0]), 10, 16)
		if err != nil {
			continue // a header, a separator or another table
		}
		if len(cells) != 7 {
			t.Fatalf("%s:%d: %d cells, want 7 (Key | Name | Served | Versions | Rewritten | Routed to | Why not served)", conformanceDoc, i+1, len(cells))
		}
		for j := range cells {
			cells[j] = strings.TrimSpace(cells[j])
		}
		rows = append(rows, conformanceRow{int16(key), cells[1], cells[2], cells[3], cells[4], cells[5], cells[6]})
	}
	return rows
}

var (
	handlerLink = regexp.MustCompile(`\]\(\.\./(kafka/[0-9]{2}_[a-z0-9_]+\.go)\)`)
	capNote     = regexp.MustCompile(`≤ v([0-9]+)`)
)

// TestConformanceDoc keeps docs/conformance.md in step with the code: every
// key kmsg knows has exactly one row, named as kmsg names it; a row says
// served exactly when handlerTable has a handler; a served row states its
// versionCaps cap and links an existing handler file; a row not served says
// why.
func TestConformanceDoc(t *testing.T) {
	table := handlerTable()
	seen := map[int16]bool{}
	for _, row := range readConformanceRows(t) {
		k := row.key
		what := fmt.Sprintf("%s: key %d", conformanceDoc, k)
		if k < 0 || k > kmsg.MaxKey {
			t.Errorf("%s: kmsg knows no such key (max %d)", what, kmsg.MaxKey)
			continue
		}
		if seen[k] {
			t.Errorf("%s: a second row", what)
		}
		seen[k] = true
		if want := kmsg.NameForKey(k); row.name != want {
			t.Errorf("%s: named %q, kmsg names it %q", what, row.name, want)
		}
		served := table[k] != nil
		switch {
		case row.served != "yes" && row.served != "no":
			t.Errorf("%s: served %q, want yes or no", what, row.served)
		case (row.served == "yes") != served:
			t.Errorf("%s (%s): the doc says served %q, the handler table says %v", what, row.name, row.served, served)
		}
		if !served {
			if row.why == "" || row.versions != "" || row.rewritten != "" || row.route != "" {
				t.Errorf("%s (%s): a key not served has only a reason: %+v", what, row.name, row)
			}
			continue
		}
		if row.why != "" || row.rewritten == "" {
			t.Errorf("%s (%s): a served key says what is rewritten and has no reason: %+v", what, row.name, row)
		}
		capped, hasCap := versionCaps[k]
		m := capNote.FindStringSubmatch(row.versions)
		switch {
		case hasCap && (m == nil || m[1] != strconv.Itoa(int(capped))):
			t.Errorf("%s (%s): versions %q, want the cap ≤ v%d stated", what, row.name, row.versions, capped)
		case !hasCap && m != nil:
			t.Errorf("%s (%s): versions %q state a cap versionCaps does not have", what, row.name, row.versions)
		case k != 18 && !strings.HasPrefix(row.versions, "backend's range"):
			t.Errorf("%s (%s): versions %q, want the backend's range", what, row.name, row.versions)
		}
		links := handlerLink.FindAllStringSubmatch(row.route, -1)
		if len(links) == 0 {
			t.Errorf("%s (%s): routed to %q links no kafka/NN_name.go file", what, row.name, row.route)
		}
		for _, l := range links {
			if _, err := os.Stat(filepath.Join("..", l[1])); err != nil {
				t.Errorf("%s (%s): links %s: %v", what, row.name, l[1], err)
			}
		}
	}
	for k := int16(0); k <= kmsg.MaxKey; k++ {
		if !seen[k] {
			t.Errorf("%s: no row for key %d (%s)", conformanceDoc, k, kmsg.NameForKey(k))
		}
	}
}
