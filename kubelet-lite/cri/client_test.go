package cri

import "testing"

func TestOperationName(t *testing.T) {
	for in, want := range map[string]string{
		"/runtime.v1.RuntimeService/ListPodSandbox": "list_pod_sandbox",
		"/runtime.v1.RuntimeService/ExecSync":       "exec_sync",
		"/runtime.v1.ImageService/PullImage":        "pull_image",
		"Version":                                   "version",
	} {
		if got := operationName(in); got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
}
