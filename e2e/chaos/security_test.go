package chaos

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/threadline/threadline/pkg/config"
	"github.com/threadline/threadline/pkg/demo"
	"github.com/threadline/threadline/pkg/fakeintercom"
	"github.com/threadline/threadline/pkg/redact"
	"github.com/threadline/threadline/pkg/stack"
	"github.com/threadline/threadline/pkg/testkit/redistest"
)

// printConfig runs binary -print-config with exactly env (and PATH) and returns its output.
func printConfig(t *testing.T, binary string, env ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(binaries(t), binary), "-print-config")
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s -print-config: %v\n%s", binary, err, out)
	}
	return string(out)
}

// configValue returns the value printed for variable name, and whether it was printed.
func configValue(printed, name string) (string, bool) {
	sc := bufio.NewScanner(strings.NewReader(printed))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && k == name {
			return v, true
		}
	}
	return "", false
}

// The defaults a deployment gets without configuring anything: admin endpoints (metrics, health,
// readiness) only on the loopback interface, the webhook secret and the Intercom token required, and
// personal PostHog keys refused as capture tokens.
func TestSecurityDefaults(t *testing.T) {
	t.Parallel() // after TestChaos, which runs alone
	required := map[string][]string{
		"ingest":     {"THREADLINE_INTERCOM_CLIENT_SECRET=s"},
		"notewriter": {"THREADLINE_INTERCOM_TOKEN=t", "THREADLINE_INTERCOM_ADMIN_ID=1"},
	}
	for _, svc := range stack.Services {
		out := printConfig(t, svc, required[svc]...)
		addr, ok := configValue(out, "THREADLINE_ADMIN_ADDR")
		if !ok {
			t.Errorf("%s prints no THREADLINE_ADMIN_ADDR:\n%s", svc, out)
			continue
		}
		host, _, err := net.SplitHostPort(addr)
		if err != nil || net.ParseIP(host) == nil || !net.ParseIP(host).IsLoopback() {
			t.Errorf("%s: admin endpoints default to %q, want a loopback address", svc, addr)
		}
		if strings.Contains(out, "# invalid") {
			t.Errorf("%s: the defaults with the required settings are invalid:\n%s", svc, out)
		}
	}
	refusals := []struct {
		binary, variable string
		env              []string
		mention          string // what the refusal must name
	}{
		{"ingest", "THREADLINE_INTERCOM_CLIENT_SECRET", nil, "THREADLINE_INTERCOM_CLIENT_SECRET"},
		{"notewriter", "THREADLINE_INTERCOM_TOKEN", []string{"THREADLINE_INTERCOM_ADMIN_ID=1"}, "token"},
		{"ingest", "THREADLINE_POSTHOG_TOKENS", append([]string{"THREADLINE_POSTHOG_TOKENS=phx_personal_api_key_1234567890"}, required["ingest"]...), "token"},
	}
	for _, r := range refusals {
		out := printConfig(t, r.binary, r.env...)
		if !strings.Contains(out, "# invalid") {
			t.Errorf("%s accepts a configuration it must refuse (%s):\n%s", r.binary, r.variable, out)
		}
		// Started for real, it refuses to run, before it connects to anything.
		cmd := exec.Command(filepath.Join(binaries(t), r.binary))
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, r.env...)
		run, err := cmd.CombinedOutput()
		if err == nil {
			t.Errorf("%s started without a valid %s", r.binary, r.variable)
		} else if !strings.Contains(string(run), r.mention) {
			t.Errorf("%s refused to start without a valid %s, but its message does not name %q: %s", r.binary, r.variable, r.mention, run)
		}
		if strings.Contains(string(run), "phx_personal_api_key_1234567890") {
			t.Errorf("%s repeats the personal API key it refuses: %s", r.binary, run)
		}
	}
}

// secretValues are the secrets the leak test runs the binaries with; none may appear in any log.
var secretValues = map[string]string{
	"THREADLINE_INTERCOM_TOKEN":         "dG9rOmxlYWstY2hlY2staW50ZXJjb20tdG9rZW4tN2Y0YQ",
	"THREADLINE_INTERCOM_CLIENT_SECRET": "leak-check-client-secret-3b9e1d",
	"THREADLINE_KAFKA_SASL_PASSWORD":    "leak-check-sasl-password-c81f0a",
	"THREADLINE_REDIS_PASSWORD":         "leak-check-redis-password-5d2e77",
	"THREADLINE_SUMMARY_LLM_API_KEY":    "sk-leakcheck0123456789abcdefABCDEF",
}

// The personal data planted in one journey: every kind in every place a product puts user text.
var planted = struct {
	Email, Phone, Card, CardSpaced, Token, IBAN, SSN string
}{
	Email:      "billing.contact+vip@example.org",
	Phone:      "+1 415 555 0132",
	Card:       "4242424242424242",
	CardSpaced: "4242 4242 4242 4242",
	Token:      "sk_live_51H8xQ2eZvKYlo2C9aBcDeFgHiJ",
	IBAN:       "DE89 3704 0044 0532 0130 00",
	SSN:        "078-05-1120",
}

// piiJourney returns a fresh journey with personal data planted in event properties, element text,
// URLs, a custom event name and an exception message.
func piiJourney(t *testing.T) demo.Journey {
	t.Helper()
	for _, v := range []string{planted.Email, planted.Phone, planted.Card, planted.CardSpaced, planted.Token, planted.IBAN, planted.SSN} {
		if len(redact.Find(v)) == 0 {
			t.Fatalf("the detector does not recognise the planted value %q: the check would prove nothing", v)
		}
	}
	j, err := demo.Fresh(time.Now().Add(-20*time.Second), 4)
	if err != nil {
		t.Fatal(err)
	}
	secretURL := "https://app.acme.dev/account/" + url.PathEscape(planted.Email) + "/billing?email=" + url.QueryEscape(planted.Email) +
		"&card=" + planted.Card + "&plan=pro#token=" + planted.Token
	edits := map[int]func(map[string]any){
		eventIndex(t, j, "$pageview", 0): func(ev map[string]any) {
			p := props(ev)
			p["$current_url"], p["$pathname"] = secretURL, "/account/"+planted.Email+"/billing"
			p["$referrer"] = "https://mail.example.com/?to=" + planted.Email
		},
		eventIndex(t, j, "$autocapture", 0): func(ev map[string]any) {
			p := props(ev)
			text := "Send to " + planted.Email + " or " + planted.Phone
			p["$el_text"] = text
			chain, _ := p["$elements_chain"].(string)
			p["$elements_chain"] = strings.Replace(chain, `text="Select Pro"`, `text="`+text+`"`, 1)
			p["$current_url"] = secretURL
		},
		eventIndex(t, j, "$autocapture", 5): func(ev map[string]any) {
			p := props(ev)
			p["$el_text"] = "Pay with " + planted.CardSpaced + " IBAN " + planted.IBAN
			p["customer_ssn"], p["iban"], p["note"] = planted.SSN, planted.IBAN, "call me on "+planted.Phone
		},
		eventIndex(t, j, "payment_validation_failed", 0): func(ev map[string]any) {
			ev["event"] = "card " + planted.Card + " declined for " + planted.Email
			p := props(ev)
			p["error_message"] = "Card " + planted.CardSpaced + " declined for " + planted.Email + ", call " + planted.Phone
			p["customer_email"], p["api_key"] = planted.Email, planted.Token
		},
		eventIndex(t, j, "$exception", 0): func(ev map[string]any) {
			list, _ := props(ev)["$exception_list"].([]any)
			first, _ := list[0].(map[string]any)
			first["value"] = "Stripe confirmCardPayment failed for " + planted.Email + " card " + planted.CardSpaced +
				" token " + planted.Token + " ssn " + planted.SSN
			first["type"] = "CardError(" + planted.Email + ")"
		},
		eventIndex(t, j, "$pageview", demo.IdentifyIndex): func(ev map[string]any) {
			props(ev)["$current_url"] = "https://app.acme.dev/settings/billing?phone=" + url.QueryEscape(planted.Phone) + "&tab=card"
		},
		eventIndex(t, j, "$dead_click", 0): func(ev map[string]any) {
			props(ev)["$el_text"] = "Update " + planted.Card
		},
	}
	for i, edit := range edits {
		if j.Events[i].Value, err = rewriteEvent(j.Events[i].Value, edit); err != nil {
			t.Fatal(err)
		}
	}
	return j
}

// testPKI is a CA and a server certificate for 127.0.0.1 it signed, as PEM files and as the
// server's TLS configuration.
type testPKI struct {
	CAFile, CertFile, KeyFile string
	CAPool                    *x509.CertPool
	Server                    *tls.Config
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "threadline test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := testPKI{
		CAFile: filepath.Join(dir, "ca.pem"), CertFile: filepath.Join(dir, "server.pem"), KeyFile: filepath.Join(dir, "server-key.pem"),
		CAPool: x509.NewCertPool(),
		Server: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12},
	}
	p.CAPool.AddCert(ca)
	for file, block := range map[string]*pem.Block{
		p.CAFile: {Type: "CERTIFICATE", Bytes: caDER}, p.CertFile: {Type: "CERTIFICATE", Bytes: der}, p.KeyFile: {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// startRedisTLS starts a redis-server that also listens with TLS (certificate of pki) and wants
// password; it returns the server and its TLS address, or "" when this redis-server has no TLS
// (then the binaries use the plain port, with the password). Without a redis-server at all the
// embedded fallback runs, with neither.
func startRedisTLS(t *testing.T, pki testPKI, password string) (srv *redistest.Server, tlsAddr string) {
	t.Helper()
	tlsAddr, err := stack.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	_, tlsPort, _ := net.SplitHostPort(tlsAddr)
	srv, err = redistest.StartProcess(t.TempDir(), "--tls-port", tlsPort, "--tls-cert-file", pki.CertFile,
		"--tls-key-file", pki.KeyFile, "--tls-ca-cert-file", pki.CAFile, "--tls-auth-clients", "no")
	if err != nil {
		t.Logf("redis-server without TLS (%v): Redis is tested with a password only", err)
		srv, tlsAddr = redistest.Start(t), ""
	} else {
		t.Cleanup(srv.Stop)
	}
	if srv.Embedded {
		return srv, ""
	}
	// The password is set once the server is up, so the helper's own readiness check needs none.
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer c.Close()
	if err := c.ConfigSet(context.Background(), "requirepass", password).Err(); err != nil {
		t.Fatalf("set the Redis password: %v", err)
	}
	return srv, tlsAddr
}

// llmEndpoint is an OpenAI-compatible endpoint that is failing: it records each request's
// authorization and body and answers 503, so the summarizer falls back to its narrative engine.
type llmEndpoint struct {
	mu       sync.Mutex
	auth     []string
	prompts  []string
	requests int
}

func (l *llmEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	l.mu.Lock()
	l.requests++
	l.auth = append(l.auth, r.Header.Get("Authorization"))
	l.prompts = append(l.prompts, string(body))
	l.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = io.WriteString(w, `{"error":{"message":"The engine is currently overloaded, please try again later","type":"server_error"}}`)
}

// The binaries run with every secret set (Intercom token and client secret, Kafka SASL password over
// TLS, Redis password, LLM API key) and a journey full of personal data: afterwards no secret may
// appear in their complete logs (nor in -print-config), and no note, summary or LLM prompt may hold
// anything the PII detector finds.
func TestSecretsAndPersonalDataNeverLeak(t *testing.T) {
	t.Parallel() // after TestChaos, which runs alone
	pki := newTestPKI(t)
	const saslUser = "threadline"
	saslPass := secretValues["THREADLINE_KAFKA_SASL_PASSWORD"]
	llm := &llmEndpoint{}
	llmSrv := httptest.NewServer(llm)
	t.Cleanup(llmSrv.Close)
	redisSrv, redisTLSAddr := startRedisTLS(t, pki, secretValues["THREADLINE_REDIS_PASSWORD"])

	env := []string{
		"THREADLINE_KAFKA_SASL_MECHANISM=scram-sha-256",
		"THREADLINE_KAFKA_SASL_USER=" + saslUser,
		"THREADLINE_KAFKA_TLS_CA_FILE=" + pki.CAFile,
		"THREADLINE_SUMMARY_ENGINE=llm",
		"THREADLINE_SUMMARY_LLM_BASE_URL=" + llmSrv.URL + "/v1",
		"THREADLINE_LOG_LEVEL=debug",
	}
	if redisTLSAddr != "" {
		env = append(env, "THREADLINE_REDIS_ADDRS="+redisTLSAddr, "THREADLINE_REDIS_TLS_ENABLED=true", "THREADLINE_REDIS_TLS_CA_FILE="+pki.CAFile)
	}
	for k, v := range secretValues {
		if k == "THREADLINE_REDIS_PASSWORD" && redisSrv.Embedded {
			continue // the embedded fallback takes no password
		}
		env = append(env, k+"="+v)
	}
	sys := startSystem(t, systemOptions{
		Env:        env,
		Redis:      redisSrv,
		BrokerOpts: []kfake.Opt{kfake.TLS(pki.Server), kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", saslUser, saslPass)},
		ClientOpts: []kgo.Opt{kgo.DialTLSConfig(&tls.Config{RootCAs: pki.CAPool, MinVersion: tls.VersionTLS12}),
			kgo.SASL(scram.Auth{User: saslUser, Pass: saslPass}.AsSha256Mechanism())},
		Fake: fakeintercom.Options{Token: secretValues["THREADLINE_INTERCOM_TOKEN"], ClientSecret: secretValues["THREADLINE_INTERCOM_CLIENT_SECRET"]},
	})
	t.Logf("Kafka over TLS with SCRAM-SHA-256; Redis with a password, over TLS: %v", redisTLSAddr != "")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tap := sys.Client(t, kgo.ConsumeTopics(sys.Topics.NotesWritten, sys.Topics.ConversationSummaries, sys.Topics.ProductActions, sys.Topics.DLQ),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(250*time.Millisecond))
	led := tapTopics(ctx, tap, sys.Topics)

	// Error paths log more than the happy path: a forged webhook, Intercom failing twice.
	forged := []byte(`{"type":"notification_event","id":"notif_forged","topic":"conversation.user.created","data":{"item":{"type":"conversation","id":"1"}}}`)
	status, _ := post(ctx, t, http.DefaultClient, sys.WebhookURL, forged, http.Header{"X-Hub-Signature": {"sha1=0000000000000000000000000000000000000000"}})
	if status != http.StatusUnauthorized {
		t.Errorf("forged webhook: %d, want 401", status)
	}
	sys.Fake.SetFault(fakeintercom.Fault{ServerErrors: 2})

	conv := playLinkedJourney(ctx, t, sys, led, piiJourney(t))
	// Wait for the summary, which the failing LLM leaves to the narrative engine.
	waitForSummary(ctx, t, sys, led, conv)

	// No personal data in anything posted to Intercom, in the summaries or in the LLM prompts.
	checked := 0
	leak := func(where, text string) {
		checked++
		for _, f := range redact.Find(text) {
			t.Errorf("%s holds %s %q:\n%s", where, f.Kind, text[f.Start:f.End], text)
		}
	}
	for _, b := range sys.Posted.Bodies() {
		leak("a note posted to conversation "+b.ConversationID, b.Body)
	}
	for _, n := range sys.Fake.Notes(conv) {
		leak("note "+n.ID+" in Intercom", n.Body)
	}
	_, summaries := led.snapshot()
	for _, s := range summaries {
		leak("summary "+s.SummaryID, s.Text)
	}
	llm.mu.Lock()
	prompts, auths := append([]string(nil), llm.prompts...), append([]string(nil), llm.auth...)
	llm.mu.Unlock()
	for _, p := range prompts {
		var req struct {
			Messages []struct{ Content string } `json:"messages"`
		}
		if err := json.Unmarshal([]byte(p), &req); err != nil {
			t.Errorf("LLM request is not JSON: %v", err)
		}
		for _, m := range req.Messages {
			leak("an LLM prompt", m.Content)
		}
	}
	if len(summaries) == 0 || len(prompts) == 0 {
		t.Errorf("%d summaries and %d LLM prompts: the summary path was not exercised", len(summaries), len(prompts))
	}
	for _, a := range auths {
		if a != "Bearer "+secretValues["THREADLINE_SUMMARY_LLM_API_KEY"] {
			t.Errorf("the LLM was called with authorization %q, not the configured key", a)
		}
	}
	masked := 0
	for _, b := range sys.Posted.Bodies() {
		for _, kind := range []string{redact.KindEmail, redact.KindPhone, redact.KindCard} {
			masked += strings.Count(b.Body, redact.Mask(kind))
		}
	}
	t.Logf("checked %d notes, summaries and prompts for personal data; %d masks shown in place of it", checked, masked)

	// No secret in the complete logs of the four binaries, nor in what -print-config prints.
	logs := sys.Logs.String()
	for _, svc := range stack.Services {
		logs += printConfig(t, svc, append(env, "THREADLINE_KAFKA_BROKERS="+sys.Broker.Addr)...)
	}
	for name, v := range secretValues {
		for _, form := range []string{v, url.QueryEscape(v), base64.StdEncoding.EncodeToString([]byte(v))} {
			if strings.Contains(logs, form) {
				i := strings.Index(logs, form)
				t.Errorf("the value of %s appears in the logs: …%s…", name, logs[max(0, i-200):min(len(logs), i+len(form)+50)])
			}
		}
	}
	for name := range secretValues {
		if !strings.Contains(logs, name+"="+config.Mask) {
			t.Errorf("-print-config does not show %s masked: the grep did not see the configuration", name)
		}
	}
	lines := bytes.Count([]byte(logs), []byte("\n"))
	if lines < 100 {
		t.Errorf("only %d log lines: too few for the check to mean anything", lines)
	}
	t.Logf("grepped %d log lines of the four binaries for %d secrets", lines, len(secretValues))
}
