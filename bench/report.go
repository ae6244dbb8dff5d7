package bench

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Targets the pipeline is measured against (issue 9).
const (
	TargetIngestPerSec        = 60000
	TargetNormalizePerCoreSec = 100000
	TargetLinkerPerSec        = 50000
	TargetLatencyP99          = time.Second
	TargetCallsPerAction      = 0.2
	TargetPeakRSS             = 150 << 20
)

// physics is what bounds the notewriter's two figures against each other, printed beside them.
const physics = `Latency against calls: a conversation receiving λ actions/s whose note is written within W s needs at
least about λ·T/(1+λ·W) notes over T s, i.e. at least 1/(1+λW) calls per action; N conversations each written
within W need up to N/W calls/s against the budget (notes.rate-per-minute). So p99 ≤ 1 s and ≤ 0.2 calls per
action hold together only when each conversation gets ≥ 4 actions/s; at 1,000 conversations and 2,000
actions/s, p99 ≤ 1 s would need ~1,000 calls/s, far above Intercom's limit. The table shows both operating
points: the default (budget) setting against calls per action, the latency-tuned one at the load the budget
allows for it.`

// Row is one line of the results table: a figure beside the limit it is measured against.
type Row struct {
	Figure   string
	Measured string
	Limit    string
	Ratio    string
	Target   string
	Meets    string // "yes", "no" or ""
}

// PipelineRows are the figures of the pipeline run, each beside its limit.
func (r *Results) PipelineRows() []Row {
	t := r.Throughput
	var rows []Row
	if t.Events > 0 {
		rows = append(rows, r.throughputRows()...)
	}
	rows = append(rows, r.latencyRows()...)
	rows = append(rows, r.directRows()...)
	for _, m := range r.Micro {
		if strings.HasSuffix(m.Package, "/pkg/triggers") && strings.HasPrefix(m.Name, "Riding/") {
			rows = append(rows, r.ruleCostRow(m))
		}
	}
	for _, svc := range sortedServices(r.PeakRSS) {
		rss := r.PeakRSS[svc]
		rows = append(rows, Row{
			Figure:   "peak RSS (VmHWM) of " + svc,
			Measured: fmt.Sprintf("%.1f MB", float64(rss)/(1<<20)),
			Limit:    "target",
			Ratio:    ratio(float64(rss), TargetPeakRSS),
			Target:   "≤ 150 MB",
			Meets:    meets(rss <= TargetPeakRSS),
		})
	}
	return rows
}

// throughputRows are the figures of the backlog phase.
func (r *Results) throughputRows() []Row {
	t := r.Throughput
	var rows []Row
	kafkaRate := r.Kafka.RecordsPerSecond()
	rows = append(rows, Row{
		Figure:   "ingest events/s, end to end (backlog of " + fmtInt(float64(t.Events)) + " raw events → product.actions)",
		Measured: fmtInt(t.Ingest.Rate()),
		Limit:    fmt.Sprintf("franz-go produce+consume of the same records, same broker: %s records/s", fmtInt(kafkaRate)),
		Ratio:    ratio(t.Ingest.Rate(), kafkaRate),
		Target:   "≥ " + fmtInt(TargetIngestPerSec),
		Meets:    meets(t.Ingest.Rate() >= TargetIngestPerSec),
	})
	jsonRate := r.JSON.EventsPerCPUSecond()
	rows = append(rows, Row{
		Figure:   "ingest events per CPU-second of its process (Kafka and capture included)",
		Measured: fmtInt(t.Ingest.PerCPUSecond()),
		Limit:    fmt.Sprintf("encoding/json parse of the same events into map[string]any: %s events per CPU-second", fmtInt(jsonRate)),
		Ratio:    ratio(t.Ingest.PerCPUSecond(), jsonRate),
	})
	if row, ok := r.normaliseRow(); ok {
		rows = append(rows, row)
	}
	set, _ := r.Redis.Find("SET")
	rows = append(rows, Row{
		Figure:   "linker actions/s (backlog of " + fmtInt(float64(t.Actions)) + " product.actions)",
		Measured: fmtInt(t.Linker.Rate()),
		Limit:    fmt.Sprintf("redis-benchmark SET, %d clients, -P %d: %s requests/s", r.Redis.Clients, r.Redis.Pipeline, fmtInt(set.RequestsPerSecond)),
		Ratio:    ratio(t.Linker.Rate(), set.RequestsPerSecond),
		Target:   "≥ " + fmtInt(TargetLinkerPerSec),
		Meets:    meets(t.Linker.Rate() >= TargetLinkerPerSec),
	})
	eval, _ := r.Redis.Find("EVAL")
	rows = append(rows, Row{
		Figure:   "linker actions per CPU-second of its process",
		Measured: fmtInt(t.Linker.PerCPUSecond()),
		Limit:    fmt.Sprintf("redis-benchmark EVAL of a two-command Lua script, -P %d: %s requests/s", r.Redis.Pipeline, fmtInt(eval.RequestsPerSecond)),
		Ratio:    ratio(t.Linker.PerCPUSecond(), eval.RequestsPerSecond),
	})
	if t.Lines > 0 {
		cpa := float64(t.NoteCalls) / float64(t.Lines)
		rows = append(rows, Row{
			Figure:   fmt.Sprintf("notewriter calls per action, backlog (%d conversations, %d lines)", t.Conversations, t.Lines),
			Measured: fmt.Sprintf("%.3f", cpa),
			Limit:    "target",
			Ratio:    ratio(cpa, TargetCallsPerAction),
			Target:   fmt.Sprintf("≤ %.1f", TargetCallsPerAction),
			Meets:    meets(cpa <= TargetCallsPerAction),
		})
	}
	return rows
}

// latencyRows are the figures of the paced latency rows.
func (r *Results) latencyRows() []Row {
	var rows []Row
	budget := r.Budget.CallsPerSecond()
	for _, row := range r.Rows {
		name := fmt.Sprintf("%s (debounce %s, max-wait %s)", row.Coalescing.Name, row.Coalescing.Debounce, row.Coalescing.MaxWait)
		actionsPerSec := float64(row.Lines) / row.Duration.Seconds()
		allowed := 0.0
		if actionsPerSec > 0 {
			allowed = budget / actionsPerSec
		}
		rows = append(rows, Row{
			Figure: fmt.Sprintf("notewriter calls per action, %s: %d calls for %d lines (%.0f actions/s to %d conversations)",
				name, row.NoteCalls, row.Lines, actionsPerSec, row.Conversations),
			Measured: fmt.Sprintf("%.3f", row.CallsPerAction()),
			Limit:    fmt.Sprintf("what the budget allows at this action rate: %.3f", allowed),
			Ratio:    ratio(row.CallsPerAction(), allowed),
			Target:   fmt.Sprintf("≤ %.1f", TargetCallsPerAction),
			Meets:    meets(row.Lines > 0 && row.CallsPerAction() <= TargetCallsPerAction),
		})
		rows = append(rows, Row{
			Figure:   fmt.Sprintf("Intercom calls/s, %s, from the load's start to the last call; 429s answered: %d", name, row.RateLimited),
			Measured: fmt.Sprintf("%.1f", row.CallsPerSecond()),
			Limit: fmt.Sprintf("budget notes.rate-per-minute %s = %.1f/s (Intercom's per-app limit: %s per 10 s)",
				fmtInt(float64(r.Budget.CallsPerMinute)), budget, fmtInt(float64(r.Budget.AppLimitWindowCalls))),
			Ratio:  ratio(row.CallsPerSecond(), budget),
			Target: "< 1 × budget, no 429",
			Meets:  meets(row.CallsPerSecond() < budget && row.RateLimited == 0),
		})
		rows = append(rows, Row{
			Figure: fmt.Sprintf("e2e latency event → note stored p50 / p95 / p99, %s; %d events/s over %d sessions, %d live lines",
				name, int(row.Rate), row.Sessions, row.LiveLines),
			Measured: fmt.Sprintf("%s / %s / %s", fmtDur(row.Percentile(50)), fmtDur(row.Percentile(95)), fmtDur(row.Percentile(99))),
			Limit:    "target p99 " + fmtDur(TargetLatencyP99),
			Ratio:    ratio(row.Percentile(99).Seconds(), TargetLatencyP99.Seconds()),
			Target:   "p99 ≤ " + fmtDur(TargetLatencyP99),
			Meets:    meets(row.LiveLines > 0 && row.Percentile(99) <= TargetLatencyP99),
		})
	}
	return rows
}

// directRows are the figures of the notewriter alone, fed straight on conversation.actions,
// each beside what coalescing and the budget allow at its load.
func (r *Results) directRows() []Row {
	var rows []Row
	for _, row := range r.Direct {
		name := fmt.Sprintf("%s (debounce %s, max-wait %s)", row.Coalescing.Name, row.Coalescing.Debounce, row.Coalescing.MaxWait)
		load := fmt.Sprintf("%d conversations at %s actions/s, actions straight on conversation.actions", row.Conversations, fmtInt(row.Rate))
		floor, minWait := row.Bound()
		lambda := row.Rate / float64(row.Conversations)
		allowed := row.Budget / row.Rate
		rows = append(rows, Row{
			Figure: fmt.Sprintf("notewriter alone, calls per action, %s; %s: %d calls for %d lines",
				name, load, row.NoteCalls, row.Lines),
			Measured: fmt.Sprintf("%.3f", row.CallsPerAction()),
			Limit: fmt.Sprintf("coalescing floor 1/(1+λW) at λ %.2f/s per conversation, W %s: %.3f; the budget allows %.3f",
				lambda, fmtDur(row.Coalescing.MaxWait), floor, allowed),
			Ratio:  ratio(row.CallsPerAction(), floor),
			Target: fmt.Sprintf("≤ %.1f", TargetCallsPerAction),
			Meets:  meets(row.Lines > 0 && row.CallsPerAction() <= TargetCallsPerAction),
		})
		rows = append(rows, Row{
			Figure:   fmt.Sprintf("notewriter alone, Intercom calls/s, %s; 429s answered: %d", name, row.RateLimited),
			Measured: fmt.Sprintf("%.1f", row.CallsPerSecond()),
			Limit:    fmt.Sprintf("budget %.1f/s; every conversation written within W needs up to N/W = %.1f/s", row.Budget, float64(row.Conversations)/row.Coalescing.MaxWait.Seconds()),
			Ratio:    ratio(row.CallsPerSecond(), row.Budget),
			Target:   "< 1 × budget, no 429",
			Meets:    meets(row.CallsPerSecond() < row.Budget && row.RateLimited == 0),
		})
		rows = append(rows, Row{
			Figure: fmt.Sprintf("notewriter alone, latency conversation.actions → note stored p50 / p95 / p99, %s; %d lines after a warm-up of %s (p99 of its %d lines: %s)",
				name, len(row.Latencies), fmtDur(row.Warmup), len(row.StartLatencies), fmtDur(Percentile(row.StartLatencies, 99))),
			Measured: fmt.Sprintf("%s / %s / %s", fmtDur(row.Percentile(50)), fmtDur(row.Percentile(95)), fmtDur(row.Percentile(99))),
			Limit: fmt.Sprintf("the budget lets each of %d conversations have a note at most every N/budget = %s; max-wait %s",
				row.Conversations, fmtDur(minWait), fmtDur(row.Coalescing.MaxWait)),
			Ratio:  ratio(row.Percentile(99).Seconds(), max(minWait, row.Coalescing.MaxWait).Seconds()),
			Target: "p99 ≤ " + fmtDur(TargetLatencyP99),
			Meets:  meets(len(row.Latencies) > 0 && row.Percentile(99) <= TargetLatencyP99),
		})
	}
	return rows
}

// MicroRows are the key figures of the package benchmarks, beside their limits.
func (r *Results) MicroRows() []Row {
	var rows []Row
	for _, m := range r.Micro {
		switch {
		case strings.HasSuffix(m.Package, "/pkg/phrasing") && strings.HasPrefix(m.Name, "Normalize/"),
			strings.HasSuffix(m.Package, "/pkg/posthog") && strings.HasPrefix(m.Name, "Decode/"):
			perCPU, ok := m.Metric("events/cpu-s")
			base, _ := m.Metric("json-events/cpu-s")
			if !ok {
				perCPU, _ = m.Metric("events/s")
				base, _ = m.Metric("json-events/s")
			}
			x, _ := m.Metric("x-vs-json")
			row := Row{
				Figure:   fmt.Sprintf("%s events per CPU-second (%s)", strings.ToLower(m.Name[:1])+m.Name[1:], pkgName(m.Package)),
				Measured: fmtInt(perCPU),
				Limit:    fmt.Sprintf("encoding/json of the same bytes: %s", fmtInt(base)),
				Ratio:    fmt.Sprintf("%.2f", x),
			}
			if strings.HasPrefix(m.Name, "Normalize/") {
				row.Target = "≥ " + fmtInt(TargetNormalizePerCoreSec) + "/s/core"
				row.Meets = meets(perCPU >= TargetNormalizePerCoreSec)
			}
			rows = append(rows, row)
		case strings.HasSuffix(m.Package, "/pkg/linkstore") && strings.HasPrefix(m.Name, "RouteBatch"):
			v, _ := m.Metric("actions/s")
			set, _ := r.Redis.Find("SET")
			rows = append(rows, Row{
				Figure:   fmt.Sprintf("linker %s actions/s, pipelined per poll batch (%s)", m.Name, pkgName(m.Package)),
				Measured: fmtInt(v),
				Limit:    fmt.Sprintf("redis-benchmark SET -P %d: %s requests/s", r.Redis.Pipeline, fmtInt(set.RequestsPerSecond)),
				Ratio:    ratio(v, set.RequestsPerSecond),
				Target:   "≥ " + fmtInt(TargetLinkerPerSec),
				Meets:    meets(v >= TargetLinkerPerSec),
			})
		case strings.HasSuffix(m.Package, "/pkg/kafka") && m.Name == "ConsumerThroughput":
			v, _ := m.Metric("records/s")
			rows = append(rows, Row{
				Figure:   "consumer loop records/s, no-op handler (pkg/kafka)",
				Measured: fmtInt(v),
				Limit:    fmt.Sprintf("franz-go produce+consume of raw records: %s records/s", fmtInt(r.Kafka.RecordsPerSecond())),
				Ratio:    ratio(v, r.Kafka.RecordsPerSecond()),
			})
		case strings.HasSuffix(m.Package, "/linker") && m.Name == "LinkedActions":
			v, _ := m.Metric("actions/s")
			set, _ := m.Metric("redis-SET/s")
			rows = append(rows, Row{
				Figure:   "linker Handle, linked actions/s over three partitions (linker)",
				Measured: fmtInt(v),
				Limit:    fmt.Sprintf("redis-benchmark SET -P 16 in that benchmark: %s requests/s", fmtInt(set)),
				Ratio:    ratio(v, set),
				Target:   "≥ " + fmtInt(TargetLinkerPerSec),
				Meets:    meets(v >= TargetLinkerPerSec),
			})
		case strings.HasSuffix(m.Package, "/pkg/triggers") && strings.HasPrefix(m.Name, "Riding/"):
			rows = append(rows, r.ruleCostRow(m))
		case strings.HasSuffix(m.Package, "/pkg/triggers"):
			rows = append(rows, r.ruleMatchRow(m))
		}
	}
	if !r.hasMicroNamed("/pkg/triggers", "Riding/") && len(r.Micro) > 0 {
		rows = append(rows, Row{Figure: "trigger rules' cost per action (pkg/triggers BenchmarkRiding)", Measured: "not in this run"})
	}
	return rows
}

// normaliseRow is the slowest shape of BenchmarkNormalize (decode and phrase on one core, per
// CPU-second) beside encoding/json on the same bytes, with the target every shape must meet.
func (r *Results) normaliseRow() (Row, bool) {
	var slowest MicroResult
	slowestRate, shapes := 0.0, 0
	for _, m := range r.Micro {
		if !strings.HasSuffix(m.Package, "/pkg/phrasing") || !strings.HasPrefix(m.Name, "Normalize/") {
			continue
		}
		rate, ok := m.Metric("events/cpu-s")
		if !ok {
			continue
		}
		if shapes++; shapes == 1 || rate < slowestRate {
			slowest, slowestRate = m, rate
		}
	}
	if shapes == 0 {
		return Row{}, false
	}
	base, _ := slowest.Metric("json-events/cpu-s")
	return Row{
		Figure: fmt.Sprintf("normalise events per CPU-second, the slowest of %d shapes: %s (pkg/phrasing BenchmarkNormalize, one core)",
			shapes, strings.TrimPrefix(slowest.Name, "Normalize/")),
		Measured: fmtInt(slowestRate),
		Limit:    fmt.Sprintf("encoding/json of the same bytes into map[string]any: %s", fmtInt(base)),
		Ratio:    ratio(slowestRate, base),
		Target:   "≥ " + fmtInt(TargetNormalizePerCoreSec) + "/s/core, every shape",
		Meets:    meets(slowestRate >= TargetNormalizePerCoreSec),
	}, true
}

// ruleCostRow is what the 20 benchmark trigger rules cost the linker per action (BenchmarkRiding:
// the engine's work riding the linker's round trip, process + redis-server CPU) beside what the
// linker costs per action: in the pipeline run, its process (Kafka included) and the
// redis-server while it drained its backlog; without that phase, Handle alone
// (BenchmarkLinkedActions), which leaves Kafka out.
func (r *Results) ruleCostRow(m MicroResult) Row {
	rules, _ := m.Metric("cpu-ns/action")
	row := Row{
		Figure:   fmt.Sprintf("trigger rules' cost per action, 20 rules, %s (process + redis-server CPU, pkg/triggers)", strings.TrimPrefix(m.Name, "Riding/")),
		Measured: fmtDur(time.Duration(rules)),
		Target:   "≤ 5% of the linker's cost per action",
	}
	handle, hasHandle := r.linkerHandleCost()
	handleText := ""
	if hasHandle {
		handleText = fmt.Sprintf("Handle alone, no Kafka (BenchmarkLinkedActions): %s (%.1f%%)", fmtDur(handle), 100*rules/float64(handle))
	}
	linker := time.Duration(0)
	if t := r.Throughput; t.Actions > 0 {
		linker = t.Linker.CostPerRecord()
	}
	switch {
	case linker > 0:
		row.Limit = fmt.Sprintf("the linker's cost per action in the pipeline run, its process (Kafka included) + redis-server: %s", fmtDur(linker))
		if handleText != "" {
			row.Limit += "; " + handleText
		}
	case hasHandle:
		linker, row.Limit = handle, "the linker's cost per action, "+handleText
	default:
		row.Limit, row.Target = "no linker figure in this run", ""
		return row
	}
	row.Ratio = ratio(rules, float64(linker))
	row.Meets = meets(rules <= 0.05*float64(linker))
	return row
}

// linkerHandleCost is the CPU time, the linker's and redis-server's, that Linker.Handle spends per
// linked action in BenchmarkLinkedActions of the same run.
func (r *Results) linkerHandleCost() (time.Duration, bool) {
	for _, m := range r.Micro {
		if !strings.HasSuffix(m.Package, "/linker") || m.Name != "LinkedActions" {
			continue
		}
		linker, ok1 := m.Metric("linker-cpu-µs/action")
		redis, ok2 := m.Metric("redis-cpu-µs/action")
		if ok1 && ok2 && linker+redis > 0 {
			return time.Duration((linker + redis) * float64(time.Microsecond)), true
		}
	}
	return 0, false
}

// ruleMatchRow is a pkg/triggers benchmark of matching alone, in memory, beside the linker's CPU
// time per action in the pipeline run.
func (r *Results) ruleMatchRow(m MicroResult) Row {
	row := Row{Figure: fmt.Sprintf("rule evaluation %s, per action (pkg/triggers)", m.Name)}
	ns, ok := m.Metric("ns/action")
	if !ok {
		ns, _ = m.Metric("ns/op")
		row.Figure = fmt.Sprintf("rule evaluation %s, per op (pkg/triggers)", m.Name)
	}
	linker := perEvent(r.Throughput.Linker.PerCPUSecond())
	row.Measured = fmtDur(time.Duration(ns))
	row.Limit = fmt.Sprintf("the linker's CPU time per action in the pipeline run: %s", fmtDur(linker))
	row.Ratio = ratio(ns, float64(linker))
	return row
}

func (r *Results) hasMicroNamed(pkgSuffix, namePrefix string) bool {
	for _, m := range r.Micro {
		if strings.HasSuffix(m.Package, pkgSuffix) && strings.HasPrefix(m.Name, namePrefix) {
			return true
		}
	}
	return false
}

func perEvent(perSec float64) time.Duration {
	if perSec <= 0 {
		return 0
	}
	return time.Duration(float64(time.Second) / perSec)
}

// WriteTable writes rows as a Markdown table.
func WriteTable(w io.Writer, rows []Row) {
	fmt.Fprintln(w, "| Figure | Measured | Limit beside it (same run) | Ratio | Target | Meets |")
	fmt.Fprintln(w, "|---|---:|---|---:|---|:-:|")
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", cell(r.Figure), cell(r.Measured), cell(r.Limit), cell(r.Ratio), cell(r.Target), cell(r.Meets))
	}
}

// WriteSummary writes the tables only: what `make bench` prints at the end.
func (r *Results) WriteSummary(w io.Writer) {
	fmt.Fprintf(w, "\n%s\n\n", r.machineLine())
	fmt.Fprintln(w, "Pipeline: the four binaries as processes, kfake broker, redis-server, fake Intercom")
	fmt.Fprintln(w)
	WriteTable(w, r.PipelineRows())
	fmt.Fprintln(w)
	fmt.Fprintln(w, physics)
	if len(r.Rows) > 0 {
		fmt.Fprintln(w)
		r.writeStages(w)
		fmt.Fprintln(w)
		r.writeCPU(w)
	}
	if rows := r.MicroRows(); len(rows) > 0 {
		fmt.Fprintf(w, "\nPackage benchmarks (go test -bench, -benchtime %s, the median of %d runs)\n\n", r.Config.BenchTime, max(r.Config.BenchCount, 1))
		WriteTable(w, rows)
	}
	for _, p := range r.Problems {
		fmt.Fprintln(w, "problem:", p)
	}
}

func (r *Results) machineLine() string {
	return fmt.Sprintf("Run %s on %d × %s (nproc %d), %s %s; load average at the start %s; the run took %s.",
		r.Date.Format("2006-01-02 15:04 MST"), r.Machine.CPUs, r.Machine.CPUModel, r.Machine.CPUs,
		r.Machine.GoVersion, r.Machine.OSArch, r.Machine.LoadAvg, r.Elapsed.Round(time.Second))
}

// WriteMarkdown writes the whole report: RESULTS.md.
func (r *Results) WriteMarkdown(w io.Writer) {
	c := r.Config
	fmt.Fprintln(w, "# Threadline pipeline benchmark")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Generated by `make bench` (bench/cmd/pipelinebench); do not edit by hand.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, r.machineLine())
	fmt.Fprintln(w)
	fmt.Fprintln(w, "The machine is shared and its load varies, so absolute figures drift from run to run; each figure")
	fmt.Fprintln(w, "stands beside a limit measured in the same run on the same broker, Redis and records, and the ratio")
	fmt.Fprintln(w, "between them is what holds. Per-CPU-second figures divide by the process's own CPU time, which")
	fmt.Fprintln(w, "other processes on the machine do not inflate.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "## Pipeline against its limits")
	fmt.Fprintln(w)
	fmt.Fprintf(w, "The four binaries run as processes against a kfake broker (in the benchmark's process, %d partitions per\n", c.Partitions)
	fmt.Fprintln(w, "topic), a redis-server and the fake Intercom. Throughput: a backlog of journeys (capture output, as the load")
	fmt.Fprintf(w, "generator produces it) is drained by ingest alone, then the linker drains the actions alone; %.0f%% of the\n", 100*c.ThroughputShare)
	fmt.Fprintln(w, "backlog's users open a conversation. Rates are taken between 10% and 90% of each backlog. Latency: the")
	fmt.Fprintf(w, "shared journey with fresh ids, %d sessions at %.0f events/s for %s, %.0f%% of the users opening a conversation\n",
		c.LatencySessions, c.LatencyRate, c.LatencyDuration, 100*c.LatencyShare)
	fmt.Fprintln(w, "right after they identify; latency runs from each line's event time to the fake storing its note, over")
	fmt.Fprintln(w, "live notes (the pre-conversation batch waits for the conversation by design). Calls count the")
	fmt.Fprintln(w, "notewriter's requests to the fake: notes, redactions, reads and data events. A row named")
	fmt.Fprintln(w, "<setting>@<sessions>x<events/s> plays a load of its own. Direct rows: the notewriter alone (the other")
	fmt.Fprintf(w, "services stopped), fed one action per record straight on conversation.actions for %s, to conversations\n", c.DirectDuration)
	fmt.Fprintln(w, "picked at random (<setting>@<conversations>x<actions/s>); latency runs from the record to the note stored,")
	fmt.Fprintln(w, "over the lines after a warm-up of max-wait + N/budget: every conversation starts at once, so their first")
	fmt.Fprintln(w, "notes fall due together and queue for the budget, which traffic spread over time does not do.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, physics)
	fmt.Fprintln(w)
	WriteTable(w, r.PipelineRows())
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Dead-lettered records during the run: %d.\n", r.DLQRecords)
	fmt.Fprintln(w)
	r.writeDrains(w)
	if t := r.Throughput; t.Events > 0 {
		fmt.Fprintln(w)
		fmt.Fprintf(w, "The load generator put the backlog (%s events, %.1f MB) on the broker at %s events/s; ingest and the\n",
			fmtInt(float64(t.Events)), float64(t.Bytes)/1e6, fmtInt(t.ProduceRate))
		fmt.Fprintln(w, "linker each drained theirs alone, the other stages idle. \"Partitions in the handler\" is handler time over")
		fmt.Fprintln(w, "the drain's wall time: below the partition count, a stage waits for records rather than working on them.")
	}
	if len(r.Rows) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| Latency row | events | conversations | action notes | summary notes | lines | live lines | calls by endpoint | settled after |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---|---:|")
		for _, row := range r.Rows {
			fmt.Fprintf(w, "| %s | %d | %d | %d | %d | %d | %d | %s | %s |\n", row.Coalescing.Name, row.Events, row.Conversations,
				row.Notes, row.Summaries, row.Lines, row.LiveLines, cell(fmtCalls(row.Calls)), row.Settle.Round(100*time.Millisecond))
		}
	}
	if len(r.Rows) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "### Where the latency goes")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Each live line's latency split at the records' timestamps on product.actions and conversation.actions")
		fmt.Fprintln(w, "(set by the producing service's client), and the CPU each process used while the load played, in cores.")
		fmt.Fprintln(w)
		r.writeStages(w)
		fmt.Fprintln(w)
		r.writeCPU(w)
		fmt.Fprintln(w)
		r.writeNotewriter(w)
	}
	if len(r.Direct) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "### The notewriter alone")
		fmt.Fprintln(w)
		r.writeDirect(w)
	}
	if rows := r.MicroRows(); len(rows) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "## Package benchmarks")
		fmt.Fprintln(w)
		fmt.Fprintf(w, "`go test -p 1 -bench . -benchtime %s -count %d` over every package with a Benchmark function, in the same run; each figure is the median of the runs.\n", c.BenchTime, max(c.BenchCount, 1))
		fmt.Fprintln(w)
		WriteTable(w, rows)
	}
	if len(r.Profiles) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "## Profiles under load")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "CPU profiles and allocations (alloc_space since the process started) of each stage, taken from")
		fmt.Fprintf(w, "/debug/pprof/ on each service's admin address; the profile files stay in %s/profiles. Top functions\n", c.WorkDir)
		fmt.Fprintln(w, "by flat share:")
		for _, p := range r.Profiles {
			fmt.Fprintln(w)
			fmt.Fprintf(w, "### %s, %s, %s\n\n", p.Service, p.Kind, stageText(p.Stage))
			if p.Total != "" {
				fmt.Fprintf(w, "%s\n\n", p.Total)
			}
			fmt.Fprintln(w, "| flat | flat% | cum | cum% | function |")
			fmt.Fprintln(w, "|---:|---:|---:|---:|---|")
			for _, e := range p.Top {
				fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", e.Flat, e.FlatPct, e.Cum, e.CumPct, cell(e.Function))
			}
		}
	}
	if len(r.Micro) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "## Every package benchmark")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| package | benchmark | ns/op | B/op | allocs/op | other |")
		fmt.Fprintln(w, "|---|---|---:|---:|---:|---|")
		for _, m := range r.Micro {
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", pkgName(m.Package), cell(m.Name),
				metricText(m, "ns/op"), metricText(m, "B/op"), metricText(m, "allocs/op"), cell(otherMetrics(m)))
		}
	}
	if len(r.Problems) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "## Problems during the run")
		fmt.Fprintln(w)
		for _, p := range r.Problems {
			fmt.Fprintf(w, "- %s\n", p)
		}
	}
}

// writeDrains writes what each stage did while it drained its backlog.
func (r *Results) writeDrains(w io.Writer) {
	fmt.Fprintln(w, "| Backlog drain | records | took | records/s (10–90%) | cores of the service | cores of the benchmark process (broker) | handler calls | records per call | mean handler time | partitions in the handler, on average |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, d := range []Drain{r.Throughput.Ingest, r.Throughput.Linker} {
		if d.Service == "" {
			continue
		}
		svc, bench := d.Cores()
		perCall, mean, busy := "", "", ""
		if d.HandleCalls > 0 {
			perCall = fmt.Sprintf("%.0f", float64(d.Target)/d.HandleCalls)
			mean = fmtDur(time.Duration(d.HandleSeconds / d.HandleCalls * float64(time.Second)))
		}
		if e := d.Elapsed(); e > 0 {
			busy = fmt.Sprintf("%.2f", d.HandleSeconds/e.Seconds())
		}
		fmt.Fprintf(w, "| %s (%s) | %s | %s | %s | %.2f | %.2f | %s | %s | %s | %s |\n", d.Service, d.Topic, fmtInt(float64(d.Target)),
			fmtDur(d.Elapsed()), fmtInt(d.Rate()), svc, bench, fmtInt(d.HandleCalls), perCall, mean, busy)
	}
}

// writeStages writes the latency of each row's live lines by stage.
func (r *Results) writeStages(w io.Writer) {
	fmt.Fprintln(w, "| Latency row | stage | p50 | p95 | p99 | lines |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|")
	for _, row := range r.Rows {
		for _, st := range StageOrder() {
			ds := row.Stages[st]
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %d |\n", row.Coalescing.Name, st,
				fmtDur(Percentile(ds, 50)), fmtDur(Percentile(ds, 95)), fmtDur(Percentile(ds, 99)), len(ds))
		}
	}
}

// writeCPU writes the cores each process kept busy while each row's load played.
func (r *Results) writeCPU(w io.Writer) {
	procs := append(append([]string{}, stackServices()...), BenchProcess)
	fmt.Fprintf(w, "| Latency row | %s | load average after |\n", strings.Join(procs, " | "))
	fmt.Fprintf(w, "|---|%s---|\n", strings.Repeat("---:|", len(procs)))
	for _, row := range r.Rows {
		cells := make([]string, len(procs))
		for i, p := range procs {
			if d, ok := row.CPU[p]; ok && row.Duration > 0 {
				cells[i] = fmt.Sprintf("%.2f", d.Seconds()/row.Duration.Seconds())
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s |\n", row.Coalescing.Name, strings.Join(cells, " | "), row.LoadAvg)
	}
}

// writeNotewriter writes the notewriter's own counters over each row.
func (r *Results) writeNotewriter(w io.Writer) {
	fmt.Fprintln(w, "| Latency row | waits for the rate budget | seconds waited | flush errors | consumer handler calls | mean handler time |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|")
	for _, row := range r.Rows {
		n := row.Notewriter
		mean := time.Duration(0)
		if c := n[NotewriterHandleCalls]; c > 0 {
			mean = time.Duration(n[NotewriterHandleSeconds] / c * float64(time.Second))
		}
		fmt.Fprintf(w, "| %s | %s | %.1f | %s | %s | %s |\n", row.Coalescing.Name, fmtInt(n[NotewriterBudgetWaits]),
			n[NotewriterBudgetWaitSeconds], fmtInt(n[NotewriterFlushErrors]), fmtInt(n[NotewriterHandleCalls]), fmtDur(mean))
	}
}

// writeDirect writes the details of the direct rows.
func (r *Results) writeDirect(w io.Writer) {
	fmt.Fprintln(w, "| Direct row | conversations | actions/s | actions | notes | lines per note | calls by endpoint | waits for the rate budget | seconds waited | flush errors | notewriter cores | load average after | settled after |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|---:|")
	for _, row := range r.Direct {
		n := row.Notewriter
		perNote := 0.0
		if row.Notes > 0 {
			perNote = float64(row.Lines) / float64(row.Notes)
		}
		fmt.Fprintf(w, "| %s | %d | %s | %d | %d | %.1f | %s | %s | %.1f | %s | %.2f | %s | %s |\n", row.Coalescing.Name,
			row.Conversations, fmtInt(row.Rate), row.Produced, row.Notes, perNote, cell(fmtCalls(row.Calls)),
			fmtInt(n[NotewriterBudgetWaits]), n[NotewriterBudgetWaitSeconds], fmtInt(n[NotewriterFlushErrors]),
			row.NotewriterCPU.Seconds()/row.Duration.Seconds(), row.LoadAvg, row.Settle.Round(100*time.Millisecond))
	}
}

func stageText(stage string) string {
	switch stage {
	case "backlog":
		return "draining the backlog alone"
	case "paced":
		return "under the paced load of the first latency row"
	}
	return stage
}

func fmtCalls(calls map[string]int) string {
	keys := make([]string, 0, len(calls))
	for k := range calls {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s: %d", k, calls[k]))
	}
	return strings.Join(parts, "; ")
}

func metricText(m MicroResult, unit string) string {
	v, ok := m.Metric(unit)
	if !ok {
		return ""
	}
	return fmtNum(v)
}

func otherMetrics(m MicroResult) string {
	var parts []string
	for unit, v := range m.Metrics {
		switch unit {
		case "ns/op", "B/op", "allocs/op":
			continue
		}
		parts = append(parts, fmtNum(v)+" "+unit)
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

func pkgName(importPath string) string {
	if i := strings.Index(importPath, "/pkg/"); i >= 0 {
		return importPath[i+1:]
	}
	if i := strings.LastIndexByte(importPath, '/'); i >= 0 {
		return importPath[i+1:]
	}
	return importPath
}

func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

func meets(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

func ratio(measured, limit float64) string {
	if limit <= 0 || math.IsNaN(measured) || math.IsInf(measured, 0) {
		return "—"
	}
	return fmt.Sprintf("%.2f", measured/limit)
}

// fmtInt writes a rounded number with thousands separators: 61,234.
func fmtInt(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "—"
	}
	n := int64(math.Round(v))
	neg := n < 0
	if neg {
		n = -n
	}
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// fmtNum writes a figure at a precision that suits its size.
func fmtNum(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1000 || v == math.Trunc(v):
		return fmtInt(v)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(time.Millisecond).String()
	case d >= time.Microsecond:
		return d.Round(10 * time.Nanosecond).String()
	}
	return d.String()
}
