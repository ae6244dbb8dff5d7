package ops

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/threadline/threadline/pkg/config"
	"github.com/threadline/threadline/pkg/service"
	"github.com/threadline/threadline/pkg/stack"
)

// composeFile is the part of docker-compose.yml the tests read.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Image       string         `yaml:"image"`
	Build       any            `yaml:"build"`
	Command     []string       `yaml:"command"`
	Environment map[string]any `yaml:"environment"`
	Profiles    []string       `yaml:"profiles"`
	DependsOn   any            `yaml:"depends_on"` // a list of names or a map of conditions
	Healthcheck struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

func readCompose(t *testing.T) composeFile {
	t.Helper()
	var c composeFile
	if err := yaml.Unmarshal(readRepoFile(t, "docker-compose.yml"), &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	if len(c.Services) == 0 {
		t.Fatal("docker-compose.yml has no services")
	}
	return c
}

// binaryOf is the Threadline binary a service built from the Dockerfile runs, or "".
func (s composeService) binaryOf() string {
	if s.Build == nil || len(s.Command) == 0 {
		return ""
	}
	return path.Base(s.Command[0])
}

// readEnvFile reads KEY=VALUE lines (comments and blank lines skipped), as docker compose's
// --env-file does for the simple values these files hold.
func readEnvFile(t *testing.T, name string) map[string]string {
	t.Helper()
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(readRepoFile(t, name)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: %q is not KEY=VALUE", name, line)
		}
		out[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return out
}

var interpolationRE = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// errMissingVariable is returned by interpolate for a ${NAME:?message} whose variable is unset.
var errMissingVariable = errors.New("required variable is not set")

// interpolate expands compose variable references in s from vars: $NAME, ${NAME},
// ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message} and $$.
func interpolate(s string, vars map[string]string) (string, error) {
	var errs []error
	out := interpolationRE.ReplaceAllStringFunc(s, func(ref string) string {
		if ref == "$$" {
			return "$"
		}
		m := interpolationRE.FindStringSubmatch(ref)
		name, op, arg := m[1], m[2], m[3]
		if name == "" {
			name = m[4]
		}
		v, set := vars[name]
		empty := !set || (strings.HasPrefix(op, ":") && v == "")
		switch strings.TrimPrefix(op, ":") {
		case "-":
			if empty {
				return arg
			}
		case "?":
			if empty {
				errs = append(errs, fmt.Errorf("%w: %s (%s)", errMissingVariable, name, arg))
			}
		}
		return v
	})
	return out, errors.Join(errs...)
}

// serviceEnv returns the service's environment with its variables interpolated from vars.
func serviceEnv(s composeService, vars map[string]string) (map[string]string, error) {
	out := map[string]string{}
	var errs []error
	for k, raw := range s.Environment {
		v, err := interpolate(fmt.Sprint(raw), vars)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", k, err))
		}
		out[k] = v
	}
	return out, errors.Join(errs...)
}

// sameValue compares what compose sets with what the binary prints (durations may print in
// another form).
func sameValue(set, printed string) bool {
	if set == printed {
		return true
	}
	a, errA := time.ParseDuration(set)
	b, errB := time.ParseDuration(printed)
	return errA == nil && errB == nil && a == b
}

// Every binary of the image has a compose service, and every service's environment is made only of
// THREADLINE_* variables its binary reads and that together pass its validation, with the values
// arriving as set.
func TestComposeServicesAreInStepWithTheBinaries(t *testing.T) {
	compose := readCompose(t)
	vars := readEnvFile(t, "deploy/fake.env")
	byBinary := map[string]string{}
	for name, svc := range compose.Services {
		if b := svc.binaryOf(); b != "" {
			if other, dup := byBinary[b]; dup {
				t.Errorf("services %s and %s both run %s", other, name, b)
			}
			byBinary[b] = name
		}
	}
	for _, b := range binaryNames {
		if _, ok := byBinary[b]; !ok {
			t.Errorf("docker-compose.yml has no service running %s", b)
		}
	}
	for b, name := range byBinary {
		if !slices.Contains(binaryNames, b) {
			t.Errorf("service %s runs %q, which is not a Threadline binary", name, b)
			continue
		}
		t.Run(name, func(t *testing.T) {
			svc := compose.Services[name]
			env, err := serviceEnv(svc, vars)
			if err != nil {
				t.Fatalf("with deploy/fake.env: %v", err)
			}
			var list []string
			for k, v := range env {
				if !strings.HasPrefix(k, config.EnvPrefix) {
					t.Errorf("%s is not a THREADLINE_* variable: configuration goes through THREADLINE_* only", k)
				}
				list = append(list, k+"="+v)
			}
			printed, invalid := printConfig(t, b, list...)
			if invalid != "" {
				t.Errorf("%s does not start with this environment: %s", b, invalid)
			}
			for k, v := range env {
				got, ok := printed[k]
				switch {
				case !ok:
					t.Errorf("%s=%q is not a variable %s reads", k, v, b)
				case got == config.Mask:
					// a secret: set, not shown
				case !sameValue(v, got):
					t.Errorf("%s=%q reaches %s as %q", k, v, b, got)
				}
			}
			if want := []string{"CMD", svc.Command[0], "-" + service.HealthcheckArg}; !slices.Equal(svc.Healthcheck.Test, want) {
				t.Errorf("health check %q, want %q", svc.Healthcheck.Test, want)
			}
			if b == "fakeintercom" {
				if !slices.Contains(svc.Profiles, "fake") {
					t.Errorf("the fake Intercom is in profiles %q, want the optional profile fake", svc.Profiles)
				}
				return
			}
			if len(svc.Profiles) != 0 {
				t.Errorf("service %s is in profiles %q; the four services always run", name, svc.Profiles)
			}
			for _, dep := range []string{"kafka", "redis"} {
				deps, _ := svc.DependsOn.(map[string]any)
				cond, _ := deps[dep].(map[string]any)
				if cond["condition"] != "service_healthy" {
					t.Errorf("depends_on %s: %v, want condition service_healthy", dep, deps[dep])
				}
			}
			host, _, err := net.SplitHostPort(env["THREADLINE_ADMIN_ADDR"])
			if err != nil || (host != "0.0.0.0" && host != "") {
				t.Errorf("THREADLINE_ADMIN_ADDR=%q: the admin server must listen on every interface for Prometheus", env["THREADLINE_ADMIN_ADDR"])
			}
		})
	}
}

// The Intercom secrets have no default in the compose file: it refuses to start without them.
func TestComposeRequiresTheIntercomSecrets(t *testing.T) {
	compose := readCompose(t)
	missing := map[string]bool{}
	for name, svc := range compose.Services {
		if svc.binaryOf() == "" {
			continue
		}
		_, err := serviceEnv(svc, map[string]string{})
		for _, secret := range []string{"THREADLINE_INTERCOM_CLIENT_SECRET", "THREADLINE_INTERCOM_TOKEN", "THREADLINE_INTERCOM_ADMIN_ID"} {
			if err != nil && errors.Is(err, errMissingVariable) && strings.Contains(err.Error(), " "+secret+" (") {
				missing[secret] = true
			}
		}
		for k, raw := range svc.Environment {
			v := fmt.Sprint(raw)
			if (strings.Contains(k, "SECRET") || strings.Contains(k, "TOKEN") || strings.Contains(k, "PASSWORD") || strings.Contains(k, "API_KEY")) &&
				v != "" && !strings.HasPrefix(v, "${") {
				t.Errorf("service %s sets %s to a literal value; secrets come from the environment", name, k)
			}
		}
	}
	for _, secret := range []string{"THREADLINE_INTERCOM_CLIENT_SECRET", "THREADLINE_INTERCOM_TOKEN", "THREADLINE_INTERCOM_ADMIN_ID"} {
		if !missing[secret] {
			t.Errorf("docker-compose.yml starts without %s; use ${%s:?…}", secret, secret)
		}
	}
}

// Kafka runs in KRaft mode from the apache/kafka image, with Redis beside it, both with health
// checks the services wait for.
func TestComposeRunsKafkaInKRaftModeAndRedis(t *testing.T) {
	compose := readCompose(t)
	kafka, ok := compose.Services["kafka"]
	if !ok {
		t.Fatal("no kafka service")
	}
	if !strings.HasPrefix(kafka.Image, "apache/kafka:") {
		t.Errorf("kafka image %q, want apache/kafka", kafka.Image)
	}
	roles := fmt.Sprint(kafka.Environment["KAFKA_PROCESS_ROLES"])
	if !strings.Contains(roles, "controller") || !strings.Contains(roles, "broker") {
		t.Errorf("KAFKA_PROCESS_ROLES=%q, want a combined KRaft broker and controller", roles)
	}
	for k := range kafka.Environment {
		if strings.Contains(strings.ToUpper(k), "ZOOKEEPER") {
			t.Errorf("kafka sets %s: KRaft mode has no ZooKeeper", k)
		}
	}
	advertised := fmt.Sprint(kafka.Environment["KAFKA_ADVERTISED_LISTENERS"])
	for name, svc := range compose.Services {
		if svc.binaryOf() == "" || svc.binaryOf() == "fakeintercom" {
			continue
		}
		brokers := fmt.Sprint(svc.Environment["THREADLINE_KAFKA_BROKERS"])
		if !strings.Contains(advertised, "//"+brokers) {
			t.Errorf("%s uses brokers %q, which kafka does not advertise (%s)", name, brokers, advertised)
		}
		if fmt.Sprint(svc.Environment["THREADLINE_REDIS_ADDRS"]) != "redis:6379" {
			t.Errorf("%s uses Redis %v, want the redis service", name, svc.Environment["THREADLINE_REDIS_ADDRS"])
		}
	}
	for _, name := range []string{"kafka", "redis"} {
		if len(compose.Services[name].Healthcheck.Test) == 0 {
			t.Errorf("%s has no health check", name)
		}
	}
}

// The one Dockerfile builds every binary compose runs, statically, into a small non-root image.
func TestDockerfileBuildsStaticNonRootBinaries(t *testing.T) {
	lines := strings.Split(strings.ReplaceAll(string(readRepoFile(t, "Dockerfile")), "\\\n", " "), "\n")
	var froms, users []string
	var build string
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			froms = append(froms, f[1])
		case "USER":
			users = append(users, f[1])
		case "RUN":
			if strings.Contains(l, "go build") {
				build = l
			}
		}
	}
	if len(froms) < 2 {
		t.Fatalf("FROM lines %q: want a multi-stage build", froms)
	}
	final := froms[len(froms)-1]
	if !strings.Contains(final, "distroless/static") || !strings.HasSuffix(final, ":nonroot") {
		t.Errorf("final stage %q, want distroless/static with the nonroot tag", final)
	}
	if len(users) == 0 || !strings.HasPrefix(users[len(users)-1], "nonroot") {
		t.Errorf("USER %q, want nonroot", users)
	}
	if !strings.Contains(build, "CGO_ENABLED=0") {
		t.Errorf("the build %q is not static (CGO_ENABLED=0)", build)
	}
	compose := readCompose(t)
	for name, svc := range compose.Services {
		b := svc.binaryOf()
		if b == "" {
			continue
		}
		pkg := "./" + b
		if !slices.Contains(stack.Services, b) {
			pkg = "./cmd/" + b
		}
		if !slices.Contains(strings.Fields(build), pkg) {
			t.Errorf("service %s runs %s, which the Dockerfile does not build (%s)", name, b, pkg)
		}
		if dir := path.Dir(svc.Command[0]); !strings.Contains(string(readRepoFile(t, "Dockerfile")), " "+dir+"/") {
			t.Errorf("service %s runs %s, but the Dockerfile copies the binaries elsewhere", name, svc.Command[0])
		}
	}
}

// The monitoring profile's Prometheus scrapes every service on its admin port, all replicas.
func TestPrometheusScrapesEveryServiceOnItsAdminPort(t *testing.T) {
	var prom struct {
		ScrapeConfigs []struct {
			JobName      string `yaml:"job_name"`
			DNSSDConfigs []struct {
				Names []string `yaml:"names"`
				Type  string   `yaml:"type"`
				Port  int      `yaml:"port"`
			} `yaml:"dns_sd_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(readRepoFile(t, "deploy/prometheus/prometheus.yml"), &prom); err != nil {
		t.Fatal(err)
	}
	compose := readCompose(t)
	for _, s := range stack.Services {
		svc, ok := compose.Services[s]
		if !ok {
			t.Fatalf("no compose service %s", s)
		}
		_, port, err := net.SplitHostPort(fmt.Sprint(svc.Environment["THREADLINE_ADMIN_ADDR"]))
		if err != nil {
			t.Fatalf("%s: THREADLINE_ADMIN_ADDR: %v", s, err)
		}
		found := false
		for _, sc := range prom.ScrapeConfigs {
			for _, sd := range sc.DNSSDConfigs {
				if slices.Contains(sd.Names, s) && strconv.Itoa(sd.Port) == port && sd.Type == "A" {
					found = true
				}
			}
		}
		if !found {
			t.Errorf("prometheus.yml does not scrape every replica of %s on port %s", s, port)
		}
	}
}
