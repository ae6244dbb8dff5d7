package config

import (
	"encoding/json"
	"flag"
	"strings"
	"testing"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestEnvNameMapsDotsAndDashes(t *testing.T) {
	for flagName, want := range map[string]string{
		"kafka.brokers":         "THREADLINE_KAFKA_BROKERS",
		"topic.product-actions": "THREADLINE_TOPIC_PRODUCT_ACTIONS",
		"replay-from":           "THREADLINE_REPLAY_FROM",
	} {
		if got := EnvName(flagName); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", flagName, got, want)
		}
	}
}

func TestParseTakesEnvironmentThenFlags(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	var brokers []string
	var group, level string
	StringListVar(fs, &brokers, "kafka.brokers", []string{"localhost:9092"}, "")
	fs.StringVar(&group, "consumer.group", "default-group", "")
	fs.StringVar(&level, "log.level", "info", "")
	err := Parse(fs, []string{"-consumer.group=from-flag"}, env(map[string]string{
		"THREADLINE_KAFKA_BROKERS":  "a:1, b:2,,",
		"THREADLINE_CONSUMER_GROUP": "from-env",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(brokers, "|") != "a:1|b:2" {
		t.Errorf("brokers = %q", brokers)
	}
	if group != "from-flag" {
		t.Errorf("group = %q, want the flag to win over the environment", group)
	}
	if level != "info" {
		t.Errorf("level = %q, want the default", level)
	}
}

func TestParseNamesTheVariableOfABadValueAndMasksSecrets(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	var n int
	var s Secret
	fs.IntVar(&n, "consumer.max-poll-records", 500, "")
	SecretVar(fs, &s, "redis.password", "")
	err := Parse(fs, nil, env(map[string]string{"THREADLINE_CONSUMER_MAX_POLL_RECORDS": "lots"}))
	if err == nil || !strings.Contains(err.Error(), "THREADLINE_CONSUMER_MAX_POLL_RECORDS") {
		t.Fatalf("error %v does not name the variable", err)
	}
}

func TestPrintMasksSecrets(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	var token, empty Secret
	var addr string
	SecretVar(fs, &token, "intercom.token", "")
	SecretVar(fs, &empty, "redis.password", "")
	fs.StringVar(&addr, "admin.addr", "127.0.0.1:9101", "")
	if err := Parse(fs, nil, env(map[string]string{"THREADLINE_INTERCOM_TOKEN": "tok_live_123"})); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := Print(&out, fs); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	want := "THREADLINE_ADMIN_ADDR=127.0.0.1:9101\nTHREADLINE_INTERCOM_TOKEN=" + Mask + "\nTHREADLINE_REDIS_PASSWORD=\n"
	if got != want {
		t.Fatalf("printed:\n%s\nwant:\n%s", got, want)
	}
	if token.Reveal() != "tok_live_123" || !token.IsSet() || empty.IsSet() {
		t.Fatal("secret value lost")
	}
	b, err := json.Marshal(struct{ Token Secret }{token})
	if err != nil || strings.Contains(string(b), "tok_live") {
		t.Fatalf("secret leaked into JSON: %s %v", b, err)
	}
}
