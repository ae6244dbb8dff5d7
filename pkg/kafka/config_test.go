package kafka

import (
	"errors"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/threadline/threadline/pkg/config"
)

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestConfigDefaultsAreValid(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	var kc Config
	var tc Topics
	var cc ConsumerConfig
	kc.RegisterFlags(fs)
	tc.RegisterFlags(fs)
	cc.RegisterFlags(fs, "linker")
	if err := config.Parse(fs, nil, envOf(nil)); err != nil {
		t.Fatal(err)
	}
	if err := kc.Validate(); err != nil {
		t.Errorf("kafka defaults: %v", err)
	}
	if err := tc.Validate(); err != nil {
		t.Errorf("topic defaults: %v", err)
	}
	if err := cc.Validate(); err != nil {
		t.Errorf("consumer defaults: %v", err)
	}
	if got, want := kc.Brokers, []string{"localhost:9092"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("brokers = %v, want %v", got, want)
	}
	if kc.TopicPartitions != 6 || kc.TopicReplication != -1 || !kc.CreateTopics {
		t.Errorf("topic creation defaults = %d/%d/%v, want 6/-1/true", kc.TopicPartitions, kc.TopicReplication, kc.CreateTopics)
	}
	if tc != DefaultTopics() {
		t.Errorf("topics = %+v, want %+v", tc, DefaultTopics())
	}
	want := DefaultConsumerConfig("linker")
	if cc != want {
		t.Errorf("consumer = %+v, want %+v", cc, want)
	}
	if cc.MaxPollRecords != 500 || cc.RetryBackoffMin != 100*time.Millisecond || cc.RetryBackoffMax != 10*time.Second {
		t.Errorf("consumer defaults = %+v", cc)
	}
	wantTopics := []string{"posthog.events.raw", "intercom.webhooks.raw", "product.actions", "conversation.events",
		"conversation.actions", "notes.written", "conversation.summaries", "intercom.events", "threadline.dlq"}
	if got := tc.All(); strings.Join(got, " ") != strings.Join(wantTopics, " ") {
		t.Errorf("All() = %v, want %v", got, wantTopics)
	}
}

func TestConfigFromEnvironmentAndFlags(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	var kc Config
	var tc Topics
	var cc ConsumerConfig
	kc.RegisterFlags(fs)
	tc.RegisterFlags(fs)
	cc.RegisterFlags(fs, "notewriter")
	env := map[string]string{
		"THREADLINE_KAFKA_BROKERS":                  "k1:9092, k2:9093",
		"THREADLINE_KAFKA_CLIENT_ID":                "threadline-notewriter",
		"THREADLINE_KAFKA_SASL_MECHANISM":           "scram-sha-512",
		"THREADLINE_KAFKA_SASL_USER":                "svc",
		"THREADLINE_KAFKA_SASL_PASSWORD":            "hunter2",
		"THREADLINE_KAFKA_TLS_ENABLED":              "true",
		"THREADLINE_KAFKA_TLS_INSECURE_SKIP_VERIFY": "true",
		"THREADLINE_KAFKA_TOPIC_PARTITIONS":         "12",
		"THREADLINE_KAFKA_TOPIC_REPLICATION":        "3",
		"THREADLINE_KAFKA_CREATE_TOPICS":            "false",
		"THREADLINE_TOPIC_PRODUCT_ACTIONS":          "acme.product.actions",
		"THREADLINE_TOPIC_DLQ":                      "acme.dlq",
		"THREADLINE_CONSUMER_GROUP":                 "nw-blue",
		"THREADLINE_CONSUMER_MAX_POLL_RECORDS":      "50",
		"THREADLINE_CONSUMER_PARTITION_BUFFER":      "200",
		"THREADLINE_CONSUMER_RETRY_BACKOFF_MIN":     "250ms",
		"THREADLINE_CONSUMER_RETRY_BACKOFF_MAX":     "30s",
		"THREADLINE_REPLAY_FROM":                    "2024-05-01T10:00:00Z",
		"THREADLINE_CONSUMER_DRAIN_TIMEOUT":         "5s",
		"THREADLINE_CONSUMER_COMMIT_INTERVAL":       "1s",
		"THREADLINE_CONSUMER_LAG_INTERVAL":          "2s",
		"THREADLINE_CONSUMER_FETCH_MAX_WAIT":        "500ms",
		"THREADLINE_CONSUMER_SESSION_TIMEOUT":       "30s",
		"THREADLINE_CONSUMER_HEARTBEAT_INTERVAL":    "2s",
		"THREADLINE_CONSUMER_REBALANCE_TIMEOUT":     "40s",
		"THREADLINE_TOPIC_CONVERSATION_SUMMARIES":   "acme.summaries",
		"THREADLINE_TOPIC_INTERCOM_EVENTS":          "acme.intercom.events",
		"THREADLINE_TOPIC_CONVERSATION_EVENTS":      "acme.conversation.events",
		"THREADLINE_TOPIC_CONVERSATION_ACTIONS":     "acme.conversation.actions",
		"THREADLINE_TOPIC_NOTES_WRITTEN":            "acme.notes.written",
		"THREADLINE_TOPIC_POSTHOG_RAW":              "acme.posthog.raw",
		"THREADLINE_TOPIC_INTERCOM_RAW":             "acme.intercom.raw",
	}
	// A flag on the command line wins over the environment.
	if err := config.Parse(fs, []string{"-consumer.group=nw-green"}, envOf(env)); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(kc.Brokers, ","); got != "k1:9092,k2:9093" {
		t.Errorf("brokers = %q", got)
	}
	if kc.ClientID != "threadline-notewriter" || kc.SASLMechanism != SASLScramSHA512 || kc.SASLUser != "svc" ||
		kc.SASLPassword.Reveal() != "hunter2" || !kc.TLSEnabled || !kc.TLSInsecureSkipVerify ||
		kc.TopicPartitions != 12 || kc.TopicReplication != 3 || kc.CreateTopics {
		t.Errorf("kafka config = %+v", kc)
	}
	if tc.ProductActions != "acme.product.actions" || tc.DLQ != "acme.dlq" || tc.ConversationSummaries != "acme.summaries" ||
		tc.PosthogRaw != "acme.posthog.raw" || tc.IntercomRaw != "acme.intercom.raw" || tc.NotesWritten != "acme.notes.written" ||
		tc.ConversationEvents != "acme.conversation.events" || tc.ConversationActions != "acme.conversation.actions" ||
		tc.IntercomEvents != "acme.intercom.events" {
		t.Errorf("topics = %+v", tc)
	}
	if cc.Group != "nw-green" || cc.MaxPollRecords != 50 || cc.PartitionBuffer != 200 ||
		cc.RetryBackoffMin != 250*time.Millisecond || cc.RetryBackoffMax != 30*time.Second ||
		cc.ReplayFrom != "2024-05-01T10:00:00Z" || cc.DrainTimeout != 5*time.Second || cc.CommitInterval != time.Second ||
		cc.LagInterval != 2*time.Second || cc.FetchMaxWait != 500*time.Millisecond || cc.SessionTimeout != 30*time.Second ||
		cc.HeartbeatInterval != 2*time.Second || cc.RebalanceTimeout != 40*time.Second {
		t.Errorf("consumer config = %+v", cc)
	}
	for name, err := range map[string]error{"kafka": kc.Validate(), "topics": tc.Validate(), "consumer": cc.Validate()} {
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	var out strings.Builder
	if err := config.Print(&out, fs); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "hunter2") || !strings.Contains(out.String(), "THREADLINE_KAFKA_SASL_PASSWORD="+config.Mask) {
		t.Errorf("print-config leaks or drops the SASL password:\n%s", out.String())
	}
}

func TestConfigValidateErrors(t *testing.T) {
	valid := DefaultConfig()
	cases := []struct {
		name   string
		mutate func(*Config)
		want   error
	}{
		{"no brokers", func(c *Config) { c.Brokers = nil }, ErrNoBrokers},
		{"blank broker", func(c *Config) { c.Brokers = []string{"a:1", " "} }, ErrNoBrokers},
		{"no client id", func(c *Config) { c.ClientID = "" }, ErrClientID},
		{"unknown sasl", func(c *Config) { c.SASLMechanism = "gssapi" }, ErrSASLMechanism},
		{"sasl without user", func(c *Config) { c.SASLMechanism = SASLPlain; c.SASLPassword = config.NewSecret("p") }, ErrSASLCredentials},
		{"sasl without password", func(c *Config) { c.SASLMechanism = SASLScramSHA256; c.SASLUser = "u" }, ErrSASLCredentials},
		{"cert without key", func(c *Config) { c.TLSCertFile = "client.pem" }, ErrTLSKeyPair},
		{"key without cert", func(c *Config) { c.TLSKeyFile = "client.key" }, ErrTLSKeyPair},
		{"zero partitions", func(c *Config) { c.TopicPartitions = 0 }, ErrTopicPartitions},
		{"zero replication", func(c *Config) { c.TopicReplication = 0 }, ErrTopicReplication},
		{"negative replication", func(c *Config) { c.TopicReplication = -2 }, ErrTopicReplication},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := valid
			c.Brokers = append([]string(nil), valid.Brokers...)
			tc.mutate(&c)
			if err := c.Validate(); !errors.Is(err, tc.want) {
				t.Fatalf("Validate() = %v, want %v", err, tc.want)
			}
		})
	}
	ok := valid
	ok.SASLMechanism, ok.SASLUser, ok.SASLPassword = "PLAIN", "u", config.NewSecret("p")
	ok.TLSCertFile, ok.TLSKeyFile = "c.pem", "k.pem"
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid SASL/TLS config: %v", err)
	}
	if !ok.tlsOn() || valid.tlsOn() {
		t.Fatalf("tlsOn: with files %v, defaults %v", ok.tlsOn(), valid.tlsOn())
	}
}

func TestTopicsValidate(t *testing.T) {
	tc := DefaultTopics()
	tc.NotesWritten = ""
	tc.DLQ = "bad topic!"
	err := tc.Validate()
	if !errors.Is(err, ErrTopicName) {
		t.Fatalf("Validate() = %v, want ErrTopicName", err)
	}
	for _, name := range []string{"topic.notes-written", "topic.dlq"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
	tc = DefaultTopics()
	tc.ProductActions = strings.Repeat("a", 250)
	if err := tc.Validate(); !errors.Is(err, ErrTopicName) {
		t.Fatalf("250-character name: %v", err)
	}
}

func TestConsumerConfigValidateErrors(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*ConsumerConfig)
		want   error
	}{
		{"no group", func(c *ConsumerConfig) { c.Group = " " }, ErrGroup},
		{"zero poll", func(c *ConsumerConfig) { c.MaxPollRecords = 0 }, ErrMaxPollRecords},
		{"zero buffer", func(c *ConsumerConfig) { c.PartitionBuffer = 0 }, ErrPartitionBuf},
		{"zero backoff", func(c *ConsumerConfig) { c.RetryBackoffMin = 0 }, ErrRetryBackoff},
		{"max below min", func(c *ConsumerConfig) { c.RetryBackoffMax = c.RetryBackoffMin / 2 }, ErrRetryBackoff},
		{"bad replay", func(c *ConsumerConfig) { c.ReplayFrom = "yesterday" }, ErrReplayFrom},
		{"heartbeat above session", func(c *ConsumerConfig) { c.HeartbeatInterval = c.SessionTimeout }, ErrGroupTimeouts},
		{"drain above rebalance", func(c *ConsumerConfig) { c.DrainTimeout = c.RebalanceTimeout }, ErrGroupTimeouts},
		{"zero commit interval", func(c *ConsumerConfig) { c.CommitInterval = 0 }, ErrIntervals},
		{"commit interval below 100ms", func(c *ConsumerConfig) { c.CommitInterval = 50 * time.Millisecond }, ErrIntervals},
		{"zero lag interval", func(c *ConsumerConfig) { c.LagInterval = 0 }, ErrIntervals},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConsumerConfig("g")
			tc.mutate(&c)
			if err := c.Validate(); !errors.Is(err, tc.want) {
				t.Fatalf("Validate() = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestParseReplayFrom(t *testing.T) {
	for in, want := range map[string]replayStart{
		"":                          {},
		"earliest":                  {earliest: true},
		"EARLIEST":                  {earliest: true},
		"2024-05-01T10:00:00+02:00": {at: time.Date(2024, 5, 1, 8, 0, 0, 0, time.UTC)},
	} {
		got, err := parseReplayFrom(in)
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if got.earliest != want.earliest || !got.at.Equal(want.at) {
			t.Errorf("%q = %+v, want %+v", in, got, want)
		}
	}
	for _, bad := range []string{"latest", "2024-05-01", "1714557600"} {
		if _, err := parseReplayFrom(bad); !errors.Is(err, ErrReplayFrom) {
			t.Errorf("%q: err = %v, want ErrReplayFrom", bad, err)
		}
	}
}
