package pods

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
)

// podConditions are the conditions the kubelet owns, with the reasons
// and messages the upstream kubelet gives them (users, controllers and
// the conformance tests read them): incomplete names the init
// containers not yet done, unready the containers (and sidecars) not
// ready.
func podConditions(pod *corev1.Pod, phase corev1.PodPhase, sandbox bool, incomplete, unready []string) []corev1.PodCondition {
	cond := func(t corev1.PodConditionType, ok bool, reason, msg string) corev1.PodCondition {
		c := corev1.PodCondition{Type: t, Status: corev1.ConditionFalse, ObservedGeneration: pod.Generation}
		if ok {
			c.Status = corev1.ConditionTrue
		} else {
			c.Reason, c.Message = reason, msg
		}
		return c
	}
	initialized := cond(corev1.PodInitialized, len(incomplete) == 0, "ContainersNotInitialized",
		fmt.Sprintf("containers with incomplete status: %v", incomplete))
	if phase == corev1.PodSucceeded {
		initialized = cond(corev1.PodInitialized, true, "", "")
		initialized.Reason = "PodCompleted"
	}

	var containersReady corev1.PodCondition
	switch phase {
	case corev1.PodSucceeded:
		containersReady = cond(corev1.ContainersReady, false, "PodCompleted", "")
	case corev1.PodFailed:
		containersReady = cond(corev1.ContainersReady, false, "PodFailed", "")
	default:
		containersReady = cond(corev1.ContainersReady, len(unready) == 0 && phase == corev1.PodRunning, "ContainersNotReady",
			fmt.Sprintf("containers with unready status: %v", unready))
		if len(unready) == 0 && phase != corev1.PodRunning {
			containersReady.Message = "" // not running yet: nothing to name
		}
	}

	// Ready follows ContainersReady, then the readiness gates.
	ready := containersReady
	ready.Type = corev1.PodReady
	if ready.Status == corev1.ConditionTrue {
		if ok, msg := readinessGates(pod); !ok {
			ready = cond(corev1.PodReady, false, "ReadinessGatesNotReady", msg)
		}
	}
	return []corev1.PodCondition{
		cond(corev1.PodReadyToStartContainers, sandbox, "", ""),
		initialized,
		containersReady,
		ready,
		cond(corev1.PodScheduled, true, "", ""),
	}
}
