package capture

import (
	"encoding/json"
	"net/http"
	"strings"
)

// remoteConfig is what GET /array/<token>/config serves: the remote config posthog-js reads at start.
// autocapture_opt_out false keeps autocapture on (it stays off until a config says so);
// supportedCompression keeps gzip; elementsChainAsString asks for $elements_chain only. Recording,
// heatmaps, surveys and feature flags are off: this host serves none of them.
func remoteConfig(token string) map[string]any {
	return map[string]any{
		"token":                 token,
		"supportedCompression":  []string{"gzip", "gzip-js"},
		"hasFeatureFlags":       false,
		"autocapture_opt_out":   false,
		"elementsChainAsString": true,
		"captureDeadClicks":     true,
		"capturePerformance":    map[string]any{"network_timing": false, "web_vitals": false, "web_vitals_allowed_metrics": nil},
		"autocaptureExceptions": true,
		"errorTracking":         map[string]any{"autocaptureExceptions": true, "suppressionRules": []any{}},
		"sessionRecording":      false,
		"heatmaps":              false,
		"surveys":               false,
		"defaultIdentifiedOnly": true,
		"siteApps":              []any{},
	}
}

// flagsResponse is what /flags/ and the legacy /decide/ serve: no flags, and the config fields older
// SDKs read from /decide/ (a superset both understand).
func flagsResponse() map[string]any {
	return map[string]any{
		"flags":                     map[string]any{},
		"featureFlags":              map[string]any{},
		"featureFlagPayloads":       map[string]any{},
		"errorsWhileComputingFlags": false,
		"requestId":                 "00000000-0000-0000-0000-000000000000",
		"config":                    map[string]any{"enable_collect_everything": true},
		"toolbarParams":             map[string]any{},
		"isAuthenticated":           false,
		"supportedCompression":      []string{"gzip", "gzip-js"},
		"autocapture_opt_out":       false,
		"elementsChainAsString":     true,
		"captureDeadClicks":         true,
		"capturePerformance":        false,
		"autocaptureExceptions":     true,
		"sessionRecording":          false,
		"heatmaps":                  false,
		"surveys":                   false,
		"siteApps":                  []any{},
	}
}

// remoteConfig serves GET /array/<token>/config.
func (h *handler) remoteConfig(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	if reason := h.refuseToken(token); reason != "" {
		h.fail(w, http.StatusUnauthorized, "token", reason)
		return
	}
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSON(w, http.StatusOK, remoteConfig(token))
}

// remoteConfigJS serves GET /array/<token>/config.js: the same config, as the script posthog-js loads
// first, which leaves it in window._POSTHOG_REMOTE_CONFIG.
func (h *handler) remoteConfigJS(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	if reason := h.refuseToken(token); reason != "" {
		h.fail(w, http.StatusUnauthorized, "token", reason)
		return
	}
	// json.Marshal escapes <, > and & in strings, so the token cannot close the script
	cfg, err := json.Marshal(map[string]any{"config": remoteConfig(token), "siteApps": []any{}})
	if err != nil {
		h.fail(w, http.StatusInternalServerError, "internal", "config")
		return
	}
	key, _ := json.Marshal(token)
	var b strings.Builder
	b.WriteString("(function(){window._POSTHOG_REMOTE_CONFIG=window._POSTHOG_REMOTE_CONFIG||{};")
	b.WriteString("window._POSTHOG_REMOTE_CONFIG[")
	b.Write(key)
	b.WriteString("]=")
	b.Write(cfg)
	b.WriteString(";})();\n")
	w.Header().Set("Content-Type", "application/javascript")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write([]byte(b.String()))
}

// flags serves /flags/ and /decide/ (GET or POST; the body, if any, is not needed).
func (h *handler) flags(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, flagsResponse())
}
