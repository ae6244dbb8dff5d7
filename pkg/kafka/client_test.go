package kafka

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/threadline/threadline/pkg/config"
	"github.com/threadline/threadline/pkg/testkit/kafkatest"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func testConfig(brokers []string) Config {
	c := DefaultConfig()
	c.Brokers = brokers
	c.ClientID = "threadline-test"
	return c
}

func ping(t *testing.T, cl *kgo.Client) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return cl.Ping(ctx)
}

func TestNewClientProducesAndRegistersClientMetrics(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.Topic(t, "client")
	kafkatest.CreateTopic(t, brokers, topic, 1)
	reg := prometheus.NewRegistry()
	cfg := testConfig(brokers)
	cl, err := NewClient(cfg, testLogger(t), reg)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("hello")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if got := kafkatest.Consume(t, brokers, topic, 1, 10*time.Second); string(got[0].Value) != "hello" {
		t.Fatalf("consumed %q", got[0].Value)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "threadline_kafka_") {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "client_id" && l.GetValue() == cfg.ClientID {
					found++
				}
			}
		}
	}
	if found == 0 {
		t.Fatalf("no threadline_kafka_* metric labelled client_id=%s among %d families", cfg.ClientID, len(families))
	}

	// A second client with the same id in the same registry starts (its metrics are skipped).
	cl2, err := NewClient(cfg, testLogger(t), reg)
	if err != nil {
		t.Fatal(err)
	}
	if err := ping(t, cl2); err != nil {
		t.Fatalf("second client: %v", err)
	}
	cl2.Close()
}

func TestNewClientRejectsInvalidConfig(t *testing.T) {
	cfg := testConfig(nil)
	if _, err := NewClient(cfg, nil, nil); err == nil {
		t.Fatal("NewClient accepted a config without brokers")
	}
	cfg = testConfig([]string{"127.0.0.1:1"})
	cfg.TLSCAFile = filepath.Join(t.TempDir(), "missing.pem")
	if _, err := NewClient(cfg, nil, nil); err == nil || !strings.Contains(err.Error(), "CA file") {
		t.Fatalf("NewClient with a missing CA file: %v", err)
	}
}

func TestNewClientSASL(t *testing.T) {
	_, brokers := kafkatest.Cluster(t,
		kfake.EnableSASL(),
		kfake.Superuser("PLAIN", "plainuser", "plainpass"),
		kfake.Superuser("SCRAM-SHA-256", "scram256", "pass256"),
		kfake.Superuser("SCRAM-SHA-512", "scram512", "pass512"),
	)
	for _, tc := range []struct{ mech, user, pass string }{
		{SASLPlain, "plainuser", "plainpass"},
		{SASLScramSHA256, "scram256", "pass256"},
		{SASLScramSHA512, "scram512", "pass512"},
	} {
		t.Run(tc.mech, func(t *testing.T) {
			cfg := testConfig(brokers)
			cfg.SASLMechanism, cfg.SASLUser, cfg.SASLPassword = tc.mech, tc.user, config.NewSecret(tc.pass)
			cl, err := NewClient(cfg, testLogger(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			if err := ping(t, cl); err != nil {
				t.Fatalf("right password: %v", err)
			}
			cfg.SASLPassword = config.NewSecret("wrong")
			bad, err := NewClient(cfg, testLogger(t), nil, kgo.RequestRetries(0))
			if err != nil {
				t.Fatal(err)
			}
			defer bad.Close()
			if err := ping(t, bad); err == nil {
				t.Fatal("wrong password: ping succeeded")
			}
		})
	}
}

// testPKI writes a CA, a broker certificate for 127.0.0.1 and a client certificate into dir.
type testPKI struct {
	caFile, clientCert, clientKey string
	server                        tls.Certificate
	pool                          *x509.CertPool
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "threadline test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, server bool) (certPEM, keyPEM []byte) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "threadline test"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}
		if server {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var p testPKI
	p.caFile = write("ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))
	scert, skey := issue(2, true)
	if p.server, err = tls.X509KeyPair(scert, skey); err != nil {
		t.Fatal(err)
	}
	ccert, ckey := issue(3, false)
	p.clientCert, p.clientKey = write("client.pem", ccert), write("client.key", ckey)
	p.pool = x509.NewCertPool()
	p.pool.AddCert(ca)
	return p
}

func TestNewClientTLS(t *testing.T) {
	pki := newTestPKI(t)
	_, brokers := kafkatest.Cluster(t, kfake.TLS(&tls.Config{
		Certificates: []tls.Certificate{pki.server},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pki.pool,
		MinVersion:   tls.VersionTLS12,
	}))
	withCert := func(c *Config) { c.TLSCertFile, c.TLSKeyFile = pki.clientCert, pki.clientKey }
	cases := []struct {
		name   string
		mutate func(*Config)
		ok     bool
	}{
		{"CA file and client certificate", func(c *Config) { withCert(c); c.TLSCAFile = pki.caFile }, true},
		{"skip verify and client certificate", func(c *Config) { withCert(c); c.TLSInsecureSkipVerify = true }, true},
		{"no client certificate", func(c *Config) { c.TLSCAFile = pki.caFile }, false},
		{"system roots do not know the CA", func(c *Config) { withCert(c); c.TLSEnabled = true }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(brokers)
			tc.mutate(&cfg)
			cl, err := NewClient(cfg, testLogger(t), nil, kgo.RequestRetries(0))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			if err := ping(t, cl); (err == nil) != tc.ok {
				t.Fatalf("ping = %v, want success %v", err, tc.ok)
			}
		})
	}
}

func partitionCounts(t *testing.T, brokers []string, topics ...string) map[string]int {
	t.Helper()
	adm := kadm.NewClient(kafkatest.Client(t, brokers))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	details, err := adm.ListTopics(ctx, topics...)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for name, d := range details {
		if d.Err == nil {
			out[name] = len(d.Partitions)
		}
	}
	return out
}

func TestEnsureTopicsCreatesMissingIdempotently(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	existing := kafkatest.Topic(t, "existing")
	kafkatest.CreateTopic(t, brokers, existing, 1)
	a, b := kafkatest.Topic(t, "a"), kafkatest.Topic(t, "b")

	cfg := testConfig(brokers)
	cfg.TopicPartitions = 3
	cl, err := NewClient(cfg, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range 2 {
		if err := EnsureTopics(ctx, cl, cfg, a, b, existing, a, ""); err != nil {
			t.Fatalf("call %d: %v", i+1, err)
		}
	}
	got := partitionCounts(t, brokers, a, b, existing)
	if got[a] != 3 || got[b] != 3 || got[existing] != 1 {
		t.Fatalf("partitions = %v, want 3, 3 and the existing topic's 1", got)
	}

	off := cfg
	off.CreateTopics = false
	notCreated := kafkatest.Topic(t, "off")
	if err := EnsureTopics(ctx, cl, off, notCreated); err != nil {
		t.Fatal(err)
	}
	if n, ok := partitionCounts(t, brokers, notCreated)[notCreated]; ok {
		t.Fatalf("topic created with %d partitions although CreateTopics is false", n)
	}
}
