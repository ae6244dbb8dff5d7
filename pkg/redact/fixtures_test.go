package redact

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The fixture tests run the redactor over real event shapes: the journey fixtures (one session,
// with an email in $set, in an exception message and in person properties, an IP and a project
// key) and PostHog's own recorded capture requests.

// readJSONLines decodes every JSON line of the file at path (comment lines are skipped).
func readJSONLines(t testing.TB, path string) []any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open fixture: %v", err)
	}
	defer f.Close()
	var out []any
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var v any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, v)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(out) == 0 {
		t.Fatalf("%s: no records", path)
	}
	return out
}

// leaves calls fn with every string in v (map keys included); strings that hold JSON (as
// PostHog's "properties" and "data" columns do) are decoded and walked instead.
func leaves(v any, fn func(string)) {
	switch x := v.(type) {
	case string:
		var inner any
		if (strings.HasPrefix(x, "{") || strings.HasPrefix(x, "[")) && json.Unmarshal([]byte(x), &inner) == nil {
			leaves(inner, fn)
			return
		}
		fn(x)
	case map[string]any:
		for k, e := range x {
			fn(k)
			leaves(e, fn)
		}
	case []any:
		for _, e := range x {
			leaves(e, fn)
		}
	}
}

func journeyFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "testdata", "posthog", "journey_*.jsonl"))
	if err != nil || len(files) != 4 {
		t.Fatalf("journey fixtures: %v, %d files", err, len(files))
	}
	return files
}

// TestJourneyFixturesRedactExactlyThePII checks every string of the journey fixtures: the ones
// carrying the user's email, IP or the project key change and keep nothing of it; every other
// string (uuids, distinct ids, URLs, prices, versions, element chains, user agents) stays as it is.
func TestJourneyFixturesRedactExactlyThePII(t *testing.T) {
	r := New(DefaultConfig())
	pii := []string{"jane.doe@example.com", "203.0.113.77", "phc_Xq4T7mVb2LkP9sWcY3nH8dRf6JzA1eGuKo5iMtBw0Nv"}
	var changed, kept int
	for _, path := range journeyFiles(t) {
		for _, rec := range readJSONLines(t, path) {
			leaves(rec, func(s string) {
				out := r.Text(s)
				hasPII := false
				for _, p := range pii {
					if strings.Contains(s, p) {
						hasPII = true
					}
					if strings.Contains(out, p) {
						t.Errorf("%s: %q survives in %q", filepath.Base(path), p, out)
					}
				}
				switch {
				case hasPII && out == s:
					t.Errorf("%s: %q not redacted", filepath.Base(path), s)
				case !hasPII && out != s:
					t.Errorf("%s: false positive: %q -> %q", filepath.Base(path), s, out)
				case hasPII:
					changed++
				default:
					kept++
				}
				if f := r.Find(out); len(f) > 0 {
					t.Errorf("%s: findings survive in %q: %v", filepath.Base(path), out, f)
				}
			})
		}
	}
	if changed == 0 || kept == 0 {
		t.Fatalf("changed %d, kept %d strings: fixtures not walked", changed, kept)
	}
	t.Logf("%d strings redacted, %d kept", changed, kept)
}

// TestJourneyValueRedactsWholeEvents redacts each decoded CDP payload as a whole value and checks
// what readers of the result see.
func TestJourneyValueRedactsWholeEvents(t *testing.T) {
	r := New(DefaultConfig())
	recs := readJSONLines(t, filepath.Join("..", "..", "testdata", "posthog", "journey_cdp_destination_payload.jsonl"))
	for _, rec := range recs {
		out, err := json.Marshal(r.Value(rec))
		if err != nil {
			t.Fatal(err)
		}
		in, _ := json.Marshal(rec)
		for _, p := range []string{"jane.doe@example.com", "203.0.113.77"} {
			if strings.Contains(string(out), p) {
				t.Fatalf("%q survives Value: %s", p, out)
			}
		}
		for _, keep := range []string{"01959426-703f-7f3a-b1ec-ebbd1410ab41", "https://app.acme.dev/"} {
			if strings.Contains(string(in), keep) && !strings.Contains(string(out), keep) {
				t.Fatalf("%q lost by Value: %s", keep, out)
			}
		}
	}
	// The exception event's message keeps its words and loses only the address.
	var found bool
	for _, rec := range recs {
		leaves(r.Value(rec), func(s string) {
			if strings.HasPrefix(s, "Stripe confirmCardPayment failed for ") {
				found = true
				if s != "Stripe confirmCardPayment failed for [email]: incorrect_number" {
					t.Errorf("exception message redacted to %q", s)
				}
			}
		})
	}
	if !found {
		t.Fatal("the exception message is not in the fixture")
	}
}

// TestUpstreamCaptureRequestsHaveNoNumericFalsePositives runs PostHog's recorded capture traffic
// (posthog-js on a local PostHog, a batch export) through Text. That traffic holds no phone, card,
// national id or IBAN, so any such finding would be a false positive on real SDK data; what is
// redacted is only tokens (project keys, encoded bodies), the loopback IP, addresses and URL
// queries.
func TestUpstreamCaptureRequestsHaveNoNumericFalsePositives(t *testing.T) {
	r := New(DefaultConfig())
	var strs int
	for _, rec := range readJSONLines(t, filepath.Join("..", "..", "testdata", "posthog-upstream", "requests_dump_public.jsonl")) {
		leaves(rec, func(s string) {
			strs++
			for _, f := range r.Find(s) {
				switch f.Kind {
				case KindToken, KindIP, KindEmail, KindURLQuery:
				default:
					t.Errorf("false positive %s %q in %q", f.Kind, s[f.Start:f.End], s)
				}
			}
			if out := r.Text(s); len(r.Find(out)) > 0 {
				t.Errorf("findings survive in %q", out)
			}
		})
	}
	if strs < 1000 {
		t.Fatalf("only %d strings walked", strs)
	}
}
