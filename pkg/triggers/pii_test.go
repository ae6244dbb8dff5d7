package triggers

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/threadline/threadline/pkg/messages"
	"github.com/threadline/threadline/pkg/redact"
)

// planted is personal data that redaction in ingest should have removed, put straight into
// an action's properties as if it had not.
var planted = map[string]string{
	"email":   "jane.doe@example.com",
	"phone":   "+1 415 555 0132",
	"card":    "4242 4242 4242 4242",
	"note":    "call me on +44 20 7946 0958 or write to jane@example.com",
	"receipt": "https://app.acme.dev/receipt?email=jane.doe%40example.com",
}

const piiRules = `triggers:
  - name: hit-payment-error
    when: { event: payment_failed }
    metadata: [error_code, plan, email, phone, card, note, receipt]
  - name: lingered-on-checkout
    when: { kind: pageview, url: /checkout }
    dwell: 10s
    metadata: [title, email, { contact: phone }]
`

// TestPersonalDataNeverReachesMetadata plants an email, phones, a card number and a URL with
// an email in the properties of matched actions: no event, emitted, stored or emitted again,
// carries any of it.
func TestPersonalDataNeverReachesMetadata(t *testing.T) {
	testPersonalDataNeverReachesMetadata(t, newRig)
}

func testPersonalDataNeverReachesMetadata(t *testing.T, newRig backend) {
	for name, v := range planted {
		if len(redact.Find(v)) == 0 {
			t.Fatalf("planted %s %q is not personal data to redact.Find: the test would prove nothing", name, v)
		}
	}
	r := newRig(t)
	e := r.engine(mustParse(t, piiRules))

	props := map[string]string{"error_code": "card_declined", "plan": "pro"}
	for k, v := range planted {
		props[k] = v
	}
	pv := pageview("pv", "/checkout", 0)
	pv.Properties = map[string]string{"title": "Checkout – Acme", "email": planted["email"], "phone": planted["phone"]}
	failed := paymentFailed("pf", 5*time.Second, props)

	emitted, err := e.EvaluateBatch(r.ctx, []Input{in(pv, user), in(failed, user)}) // left unconfirmed
	if err != nil {
		t.Fatal(err)
	}
	dwelled, err := e.Tick(r.ctx, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	r.clock.Set(t0.Add(time.Hour)) // past every lease: both come back from what Redis stored
	again, err := e.Tick(r.ctx, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	all := append(append(append([]messages.IntercomEvent(nil), emitted...), dwelled...), again...)
	if len(emitted) != 1 || len(dwelled) != 1 || len(again) != 2 {
		t.Fatalf("emitted %d, dwell %d, again %d events; want 1, 1, 2", len(emitted), len(dwelled), len(again))
	}

	for _, ev := range all {
		for k, v := range ev.Metadata {
			if found := redact.Find(fmt.Sprint(v)); len(found) > 0 {
				t.Errorf("%s: metadata %s holds %s", ev.EventName, k, found[0].Kind)
			}
		}
		body, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		if found := redact.Find(string(body)); len(found) > 0 {
			t.Errorf("%s: event JSON holds %s: %s", ev.EventName, found[0].Kind, body)
		}
		for name, v := range planted {
			if strings.Contains(string(body), v) {
				t.Errorf("%s: event carries the planted %s", ev.EventName, name)
			}
		}
	}
	if md := emitted[0].Metadata; len(md) != 2 || md["error_code"] != "card_declined" || md["plan"] != "pro" {
		t.Errorf("payment error metadata = %v, want error_code and plan only", md)
	}
	if md := dwelled[0].Metadata; len(md) != 1 || md["title"] != "Checkout – Acme" {
		t.Errorf("dwell metadata = %v, want the title only", md)
	}
	if n := r.counter("threadline_triggers_metadata_dropped_total", map[string]string{"rule": "hit-payment-error", "reason": "personal_data"}); n != 5 {
		t.Errorf("personal data dropped = %v, want 5", n)
	}
	validateEvents(t, all)
}

// TestMetadataLimits: at most 10 keys, strings cut to 255 characters (not bytes), a missing
// property left out and counted, and no metadata at all when nothing is left.
func TestMetadataLimits(t *testing.T) {
	r := newRig(t)
	var keys []string
	props := map[string]string{}
	for i := range MaxMetadata {
		k := fmt.Sprintf("k%d", i)
		keys = append(keys, k)
		props[k] = strings.Repeat("é", 300)
	}
	e := r.engine(mustParse(t, fmt.Sprintf(`triggers:
  - name: hit-payment-error
    when: { event: payment_failed }
    metadata: [%s]
  - name: rage-clicked
    when: { event: $rageclick }
    metadata: [absent]
`, strings.Join(keys, ", "))))
	got := r.evaluate(e, in(paymentFailed("pf", 0, props), user), in(rageClick("rc", time.Second), user))
	if len(got) != 2 {
		t.Fatalf("%d events, want 2", len(got))
	}
	md := got[0].Metadata
	if len(md) != MaxMetadata {
		t.Fatalf("%d metadata keys, want %d", len(md), MaxMetadata)
	}
	for k, v := range md {
		s := v.(string)
		if n := utf8.RuneCountInString(s); n != MaxMetadataValue || !utf8.ValidString(s) {
			t.Errorf("%s: %d characters (valid UTF-8: %v), want %d", k, n, utf8.ValidString(s), MaxMetadataValue)
		}
	}
	if got[1].Metadata != nil {
		t.Errorf("metadata of an action without the property = %v, want none", got[1].Metadata)
	}
	if n := r.counter("threadline_triggers_metadata_dropped_total", map[string]string{"rule": "rage-clicked", "reason": "missing"}); n != 1 {
		t.Errorf("missing = %v, want 1", n)
	}
	validateEvents(t, got)
}

func TestCutRunes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"abc", 5, "abc"}, {"abcdef", 3, "abc"}, {"ééé", 2, "éé"}, {"", 3, ""}, {"日本語テキスト", 3, "日本語"},
	} {
		if got := cutRunes(tc.in, tc.n); got != tc.want {
			t.Errorf("cutRunes(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}
