package kafka

import (
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/threadline/threadline/pkg/config"
)

// SASL mechanisms Config.SASLMechanism accepts ("" means no SASL).
const (
	SASLPlain       = "plain"
	SASLScramSHA256 = "scram-sha-256"
	SASLScramSHA512 = "scram-sha-512"
)

// Defaults of Config.
const (
	DefaultBroker           = "localhost:9092"
	DefaultClientID         = "threadline"
	DefaultTopicPartitions  = 6
	DefaultTopicReplication = -1 // the broker's default.replication.factor
)

// Errors Config.Validate returns, wrapped with the offending value.
var (
	ErrNoBrokers        = errors.New("kafka: no brokers")
	ErrClientID         = errors.New("kafka: client id is empty")
	ErrSASLMechanism    = errors.New("kafka: unknown SASL mechanism")
	ErrSASLCredentials  = errors.New("kafka: SASL needs a user and a password")
	ErrTLSKeyPair       = errors.New("kafka: TLS certificate and key must be set together")
	ErrTopicPartitions  = errors.New("kafka: topic partitions must be at least 1")
	ErrTopicReplication = errors.New("kafka: topic replication must be -1 (broker default) or at least 1")
)

// Config is how a Threadline binary connects to Kafka and creates its topics.
type Config struct {
	Brokers  []string // seed brokers, host:port
	ClientID string   // client.id the brokers see; also the client_id label of the client metrics

	SASLMechanism string // "", plain, scram-sha-256, scram-sha-512
	SASLUser      string
	SASLPassword  config.Secret

	// TLS is on when TLSEnabled is set or any TLS file is given. Without a CA file the
	// system roots verify the brokers.
	TLSEnabled            bool
	TLSCAFile             string
	TLSCertFile           string // client certificate (mutual TLS), with TLSKeyFile
	TLSKeyFile            string
	TLSInsecureSkipVerify bool

	TopicPartitions  int  // partitions of topics created at start-up
	TopicReplication int  // replication factor of topics created at start-up; -1 is the broker default
	CreateTopics     bool // create missing topics at start-up
}

// DefaultConfig returns the defaults RegisterFlags installs.
func DefaultConfig() Config {
	return Config{
		Brokers:          []string{DefaultBroker},
		ClientID:         DefaultClientID,
		TopicPartitions:  DefaultTopicPartitions,
		TopicReplication: DefaultTopicReplication,
		CreateTopics:     true,
	}
}

// RegisterFlags registers the kafka.* flags on fs, with the defaults of DefaultConfig.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	d := DefaultConfig()
	config.StringListVar(fs, &c.Brokers, "kafka.brokers", d.Brokers, "comma-separated seed brokers (host:port)")
	fs.StringVar(&c.ClientID, "kafka.client-id", d.ClientID, "Kafka client id; also labels the client metrics")
	fs.StringVar(&c.SASLMechanism, "kafka.sasl-mechanism", d.SASLMechanism, "SASL mechanism: empty (none), plain, scram-sha-256 or scram-sha-512")
	fs.StringVar(&c.SASLUser, "kafka.sasl-user", d.SASLUser, "SASL user")
	config.SecretVar(fs, &c.SASLPassword, "kafka.sasl-password", "SASL password")
	fs.BoolVar(&c.TLSEnabled, "kafka.tls-enabled", d.TLSEnabled, "connect to the brokers over TLS (implied by any kafka.tls-* file)")
	fs.StringVar(&c.TLSCAFile, "kafka.tls-ca-file", d.TLSCAFile, "PEM file of the CA that signed the broker certificates (default: system roots)")
	fs.StringVar(&c.TLSCertFile, "kafka.tls-cert-file", d.TLSCertFile, "PEM client certificate for mutual TLS")
	fs.StringVar(&c.TLSKeyFile, "kafka.tls-key-file", d.TLSKeyFile, "PEM client key for mutual TLS")
	fs.BoolVar(&c.TLSInsecureSkipVerify, "kafka.tls-insecure-skip-verify", d.TLSInsecureSkipVerify, "do not verify broker certificates (testing only)")
	fs.IntVar(&c.TopicPartitions, "kafka.topic-partitions", d.TopicPartitions, "partitions of topics created at start-up")
	fs.IntVar(&c.TopicReplication, "kafka.topic-replication", d.TopicReplication, "replication factor of topics created at start-up (-1: broker default)")
	fs.BoolVar(&c.CreateTopics, "kafka.create-topics", d.CreateTopics, "create missing topics at start-up")
}

// Validate checks the configuration without contacting Kafka.
func (c Config) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, ErrNoBrokers)
	}
	for _, b := range c.Brokers {
		if strings.TrimSpace(b) == "" {
			errs = append(errs, fmt.Errorf("%w: empty broker address in %q", ErrNoBrokers, c.Brokers))
		}
	}
	if strings.TrimSpace(c.ClientID) == "" {
		errs = append(errs, ErrClientID)
	}
	switch strings.ToLower(c.SASLMechanism) {
	case "":
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		if c.SASLUser == "" || !c.SASLPassword.IsSet() {
			errs = append(errs, fmt.Errorf("%w (mechanism %s)", ErrSASLCredentials, c.SASLMechanism))
		}
	default:
		errs = append(errs, fmt.Errorf("%w: %q (want %s, %s or %s)", ErrSASLMechanism, c.SASLMechanism, SASLPlain, SASLScramSHA256, SASLScramSHA512))
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, fmt.Errorf("%w (cert %q, key %q)", ErrTLSKeyPair, c.TLSCertFile, c.TLSKeyFile))
	}
	if c.TopicPartitions < 1 {
		errs = append(errs, fmt.Errorf("%w: %d", ErrTopicPartitions, c.TopicPartitions))
	}
	if (c.TopicReplication != -1 && c.TopicReplication < 1) || c.TopicReplication > 32767 {
		errs = append(errs, fmt.Errorf("%w: %d", ErrTopicReplication, c.TopicReplication))
	}
	return errors.Join(errs...)
}

// tlsOn reports whether the client connects over TLS.
func (c Config) tlsOn() bool {
	return c.TLSEnabled || c.TLSCAFile != "" || c.TLSCertFile != "" || c.TLSKeyFile != "" || c.TLSInsecureSkipVerify
}
