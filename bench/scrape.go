package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// RecordsConsumedMetric counts the records a service's consumer finished, by topic.
const RecordsConsumedMetric = "threadline_consumer_records_consumed_total"

// Scrape reads the Prometheus text exposition at http://addr/metrics and returns the sum of
// metric's samples whose labels include every pair of labels.
func Scrape(ctx context.Context, addr, metric string, labels map[string]string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return 0, fmt.Errorf("bench: scrape %s: %w", addr, err)
	}
	// Uncompressed: a gzipped exposition would cost the measured service CPU at every sample.
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("bench: scrape %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("bench: scrape %s: status %d", addr, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return 0, fmt.Errorf("bench: scrape %s: %w", addr, err)
	}
	return SumSamples(string(body), metric, labels), nil
}

// SumSamples sums the samples of metric in a Prometheus text exposition whose labels include
// every pair of labels.
func SumSamples(exposition, metric string, labels map[string]string) float64 {
	var sum float64
	for _, line := range strings.Split(exposition, "\n") {
		rest, ok := strings.CutPrefix(line, metric)
		if !ok || rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		var labelText string
		if rest[0] == '{' {
			end := strings.LastIndexByte(rest, '}')
			if end < 0 {
				continue
			}
			labelText, rest = rest[1:end], rest[end+1:]
		}
		if !hasLabels(labelText, labels) {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(f[0], 64); err == nil {
			sum += v
		}
	}
	return sum
}

func hasLabels(text string, want map[string]string) bool {
	for k, v := range want {
		if !strings.Contains(","+text+",", ","+k+"="+strconv.Quote(v)+",") {
			return false
		}
	}
	return true
}
