package ops

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/threadline/threadline/pkg/config"
	"github.com/threadline/threadline/pkg/stack"
)

// readmeSection returns the lines of the README's "## title" section, up to the next "## " heading.
func readmeSection(t *testing.T, title string) []string {
	t.Helper()
	var (
		out []string
		in  bool
	)
	sc := bufio.NewScanner(bytes.NewReader(readRepoFile(t, "README.md")))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			if in {
				break
			}
			in = strings.TrimSpace(strings.TrimPrefix(line, "## ")) == title
			continue
		}
		if in {
			out = append(out, line)
		}
	}
	if !in {
		t.Fatalf("README has no %q section", title)
	}
	return out
}

// tableRow is one row of a README table whose first cell is a single code span.
type tableRow struct {
	Name  string   // the code span of the first cell
	Cells []string // every cell, trimmed, the first included
	Line  int      // line within the section, for messages
}

var firstCellRE = regexp.MustCompile("^`([^`]+)`$")

// tableRows reads the rows of every table in lines whose first cell is one code span starting
// with prefix.
func tableRows(lines []string, prefix string) []tableRow {
	var rows []tableRow
	for i, line := range lines {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") || !strings.HasSuffix(line, "|") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for j := range cells {
			cells[j] = strings.TrimSpace(cells[j])
		}
		m := firstCellRE.FindStringSubmatch(cells[0])
		if m == nil || !strings.HasPrefix(m[1], prefix) {
			continue
		}
		rows = append(rows, tableRow{Name: m[1], Cells: cells, Line: i + 1})
	}
	return rows
}

// binariesIn reads a "Binaries" cell: "all four" means the four services, and every binary named
// in it counts ("summarizer (engine llm)" is the summarizer).
func binariesIn(cell string) []string {
	var out []string
	words := regexp.MustCompile(`[a-z]+`).FindAllString(strings.ToLower(cell), -1)
	if strings.Contains(strings.ToLower(cell), "all four") {
		out = append(out, stack.Services...)
	}
	for _, w := range words {
		if slices.Contains(binaryNames, w) && !slices.Contains(out, w) {
			out = append(out, w)
		}
	}
	sort.Strings(out)
	return out
}

var (
	codeSpanRE   = regexp.MustCompile("`([^`]*)`")
	perBinaryRE  = regexp.MustCompile("`([^`]*)` \\(([a-z]+)\\)")
	noneDefaults = []string{"none"}
)

// defaultFor reads a "Default" cell for binary: "none" (empty), one code span (the same for every
// binary), or one "`value` (binary)" per binary.
func defaultFor(cell, binary string) (string, error) {
	if slices.Contains(noneDefaults, strings.ToLower(strings.Fields(cell + " x")[0])) {
		return "", nil
	}
	if per := perBinaryRE.FindAllStringSubmatch(cell, -1); len(per) > 1 {
		for _, m := range per {
			if m[2] == binary {
				return m[1], nil
			}
		}
		return "", fmt.Errorf("no default for %s in %q", binary, cell)
	}
	spans := codeSpanRE.FindAllStringSubmatch(cell, -1)
	if len(spans) != 1 {
		return "", fmt.Errorf("default %q: want none, one `value`, or `value` (binary) for each binary", cell)
	}
	return spans[0][1], nil
}

// The configuration reference lists, per binary, exactly the variables the binary reads, with the
// defaults it prints.
func TestReadmeConfigurationTableMatchesEveryBinary(t *testing.T) {
	rows := tableRows(readmeSection(t, "Configuration"), config.EnvPrefix)
	if len(rows) == 0 {
		t.Fatal("the Configuration section has no table rows of THREADLINE_* variables")
	}
	documented := map[string]map[string]tableRow{} // binary → variable → row
	seen := map[string]bool{}
	for _, r := range rows {
		if seen[r.Name] {
			t.Errorf("README: %s has more than one row", r.Name)
		}
		seen[r.Name] = true
		if len(r.Cells) != 4 {
			t.Errorf("README: row of %s has %d cells, want Variable | Binaries | Default | Meaning", r.Name, len(r.Cells))
			continue
		}
		if r.Cells[3] == "" {
			t.Errorf("README: %s has no meaning", r.Name)
		}
		bins := binariesIn(r.Cells[1])
		if len(bins) == 0 {
			t.Errorf("README: %s names no binary in %q", r.Name, r.Cells[1])
		}
		for _, b := range bins {
			if documented[b] == nil {
				documented[b] = map[string]tableRow{}
			}
			documented[b][r.Name] = r
		}
	}

	for _, binary := range binaryNames {
		printed, _ := printConfig(t, binary)
		for name, value := range printed {
			row, ok := documented[binary][name]
			if !ok {
				t.Errorf("%s reads %s (default %q), which the README's configuration table does not list for it", binary, name, value)
				continue
			}
			want, err := defaultFor(row.Cells[2], binary)
			if err != nil {
				t.Errorf("README: %s: %v", name, err)
				continue
			}
			if value == config.Mask {
				// A secret with a default prints masked; the README must still say what it is.
				if want == "" {
					t.Errorf("README: %s has a default in %s (printed masked) but the table says none", name, binary)
				}
				continue
			}
			if want != value {
				t.Errorf("README: %s defaults to %q in the table, %s prints %q", name, want, binary, value)
			}
		}
		for name := range documented[binary] {
			if _, ok := printed[name]; !ok {
				t.Errorf("README lists %s for %s, which %s does not read", name, binary, binary)
			}
		}
	}
}

// metricRow is one row of the README's metrics table.
type metricRow struct {
	Name, Type string
	Binaries   []string
}

func readmeMetrics(t *testing.T) []metricRow {
	t.Helper()
	var out []metricRow
	for _, r := range tableRows(readmeSection(t, "Observability"), "threadline_") {
		if len(r.Cells) != 5 {
			t.Fatalf("README: metric row %s has %d cells, want Metric | Type | Binaries | Labels | Meaning", r.Name, len(r.Cells))
		}
		bins := binariesIn(r.Cells[2])
		if len(bins) == 0 {
			t.Fatalf("README: metric %s names no binary", r.Name)
		}
		out = append(out, metricRow{Name: r.Name, Type: r.Cells[1], Binaries: bins})
	}
	if len(out) == 0 {
		t.Fatal("README: the Observability section lists no threadline_* metric")
	}
	return out
}

var (
	typeLineRE = regexp.MustCompile(`^# TYPE (\S+) (\S+)$`)
	metricRE   = regexp.MustCompile(`threadline_[a-z0-9_]+`)
)

// families reads the metric families of a Prometheus text exposition, by name, with their type.
func families(exposition string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(exposition, "\n") {
		if m := typeLineRE.FindStringSubmatch(line); m != nil {
			out[m[1]] = m[2]
		}
	}
	return out
}

// checkMetricsAgainstReadme compares what each binary serves with the README: every listed metric
// is served by its binaries with its type, and every threadline_* metric served is named there.
func checkMetricsAgainstReadme(t *testing.T, served map[string]map[string]string) {
	t.Helper()
	rows := readmeMetrics(t)
	section := strings.Join(readmeSection(t, "Observability"), "\n")
	for _, r := range rows {
		for _, b := range r.Binaries {
			got, ok := served[b]
			if !ok {
				continue // the binary is not part of this run
			}
			typ, ok := got[r.Name]
			if !ok {
				t.Errorf("README lists %s for %s, which %s does not serve", r.Name, b, b)
				continue
			}
			if typ != r.Type {
				t.Errorf("README: %s is a %s, %s serves a %s", r.Name, r.Type, b, typ)
			}
		}
	}
	for b, got := range served {
		for name := range got {
			if strings.HasPrefix(name, "threadline_") && !strings.Contains(section, "`"+name+"`") {
				t.Errorf("%s serves %s, which the README's Observability section does not name", b, name)
			}
		}
	}
}

// The Grafana dashboard is valid JSON and queries only metrics the README lists.
func TestGrafanaDashboardQueriesOnlyListedMetrics(t *testing.T) {
	listed := map[string]bool{}
	for _, r := range readmeMetrics(t) {
		listed[r.Name] = true
	}
	var dash map[string]any
	if err := json.Unmarshal(readRepoFile(t, "deploy/grafana/threadline.json"), &dash); err != nil {
		t.Fatalf("deploy/grafana/threadline.json: %v", err)
	}
	if title, _ := dash["title"].(string); title == "" {
		t.Error("the dashboard has no title")
	}
	var exprs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, child := range v {
				if s, ok := child.(string); ok && (k == "expr" || k == "query") {
					exprs = append(exprs, s)
				}
				walk(child)
			}
		case []any:
			for _, child := range v {
				walk(child)
			}
		}
	}
	walk(dash)
	panels, _ := dash["panels"].([]any)
	if len(panels) == 0 || len(exprs) == 0 {
		t.Fatalf("the dashboard has %d panels and %d queries", len(panels), len(exprs))
	}
	used := map[string]bool{}
	for _, e := range exprs {
		for _, name := range metricRE.FindAllString(e, -1) {
			base := name
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if trimmed, ok := strings.CutSuffix(name, suffix); ok && listed[trimmed] {
					base = trimmed
				}
			}
			if !listed[base] {
				t.Errorf("the dashboard queries %s (in %q), which the README does not list", name, e)
			}
			used[base] = true
		}
	}
	// The dashboard covers what the issue asks an operator to see.
	for _, must := range []string{
		"threadline_consumer_records_consumed_total", "threadline_consumer_dlq_records_total",
		"threadline_consumer_lag", "threadline_notes_posted_total", "threadline_notes_redactions_total",
		"threadline_notes_breaker_state", "threadline_notes_rate_budget_waits_total",
		"threadline_intercom_rate_limit_remaining", "threadline_linker_redis_errors_total",
	} {
		if !used[must] {
			t.Errorf("the dashboard has no panel on %s", must)
		}
	}
}
