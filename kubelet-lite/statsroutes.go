package kubeletlite

import (
	"encoding/json"
	"log/slog"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hivelet/hivelet/kubelet-lite/metrics"
	"github.com/hivelet/hivelet/kubelet-lite/pods"
	"github.com/hivelet/hivelet/kubelet-lite/stats"
)

// statsRoutes serves /stats/summary, /metrics/resource, /metrics and /pods, as the
// upstream kubelet's API does.
func statsRoutes(mux *http.ServeMux, p *stats.Provider, m *pods.Manager, log *slog.Logger) {
	mux.HandleFunc("GET /stats/summary", func(w http.ResponseWriter, r *http.Request) {
		s, err := p.Summary(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, s, log)
	})
	mux.HandleFunc("GET /metrics/resource", func(w http.ResponseWriter, r *http.Request) {
		s, err := p.Summary(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		if err := stats.WriteResourceMetrics(w, s); err != nil {
			log.Debug("Writing resource metrics failed", "error", err)
		}
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		if err := metrics.Kubelet.Write(w); err != nil {
			log.Debug("Writing the kubelet's metrics failed", "error", err)
		}
	})
	mux.HandleFunc("GET /pods", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, &corev1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"}, Items: m.RunningPods()}, log)
	})
}

func writeJSON(w http.ResponseWriter, v any, log *slog.Logger) {
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		log.Debug("Writing a kubelet API answer failed", "error", err)
	}
}
