// Package check decodes zerosys's Kubernetes manifests strictly into the
// typed API objects and asserts what the deployment depends on: Guaranteed
// QoS with integer CPUs, the Localhost seccomp profile that allows io_uring,
// probes on the metrics port, a grace period longer than preStop + drain,
// and a locked-down security context.
//
// It is a module of its own so that zerosys's go.mod never gains k8s.io.
// Run it with `cd deploy/kubernetes/check && go test ./...`.
package check

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

const (
	seccompProfile = "profiles/zerosys.json"
	metricsPort    = 9090
	httpPort       = 8080
)

// decode reads one manifest and decodes it strictly: an unknown or
// misspelt field, or a duplicate key, is an error (the API server would
// drop or reject it).
func decode(t *testing.T, file string, into any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", file))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "\n---") {
		t.Fatalf("%s: one object per file, please", file)
	}
	if err := yaml.UnmarshalStrict(data, into); err != nil {
		t.Fatalf("%s does not decode strictly: %v", file, err)
	}
}

func TestManifestsAreAllChecked(t *testing.T) {
	files, err := filepath.Glob("../*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	want := []string{"daemonset.yaml", "deployment.yaml", "service.yaml"}
	if !slices.Equal(names, want) {
		t.Errorf("manifests %v; this test checks %v: add a check for the new one", names, want)
	}
}

func TestDeployment(t *testing.T) {
	var d appsv1.Deployment
	decode(t, "deployment.yaml", &d)
	if d.APIVersion != "apps/v1" || d.Kind != "Deployment" {
		t.Fatalf("deployment.yaml is %s %s", d.APIVersion, d.Kind)
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas < 2 {
		t.Errorf("replicas %v: want at least 2 for rolling updates without an outage", d.Spec.Replicas)
	}
	if ru := d.Spec.Strategy.RollingUpdate; d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType ||
		ru == nil || ru.MaxUnavailable == nil || ru.MaxUnavailable.IntValue() != 0 {
		t.Errorf("strategy %+v: want RollingUpdate with maxUnavailable 0", d.Spec.Strategy)
	}
	checkSelector(t, d.Spec.Selector.MatchLabels, d.Spec.Template.Labels)
	checkPod(t, "deployment.yaml", d.Spec.Template.Spec)
}

func TestDaemonSet(t *testing.T) {
	var ds appsv1.DaemonSet
	decode(t, "daemonset.yaml", &ds)
	if ds.APIVersion != "apps/v1" || ds.Kind != "DaemonSet" {
		t.Fatalf("daemonset.yaml is %s %s", ds.APIVersion, ds.Kind)
	}
	if ds.Spec.UpdateStrategy.Type != appsv1.RollingUpdateDaemonSetStrategyType {
		t.Errorf("updateStrategy %q, want RollingUpdate", ds.Spec.UpdateStrategy.Type)
	}
	checkSelector(t, ds.Spec.Selector.MatchLabels, ds.Spec.Template.Labels)
	checkPod(t, "daemonset.yaml", ds.Spec.Template.Spec)
}

func TestService(t *testing.T) {
	var s corev1.Service
	decode(t, "service.yaml", &s)
	if s.APIVersion != "v1" || s.Kind != "Service" {
		t.Fatalf("service.yaml is %s %s", s.APIVersion, s.Kind)
	}
	var d appsv1.Deployment
	decode(t, "deployment.yaml", &d)
	var ds appsv1.DaemonSet
	decode(t, "daemonset.yaml", &ds)
	for name, pod := range map[string]corev1.PodTemplateSpec{"deployment": d.Spec.Template, "daemonset": ds.Spec.Template} {
		if len(s.Spec.Selector) == 0 || !labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(pod.Labels)) {
			t.Errorf("the Service's selector %v does not select the %s's pods %v", s.Spec.Selector, name, pod.Labels)
		}
		c := zerosysContainer(t, pod.Spec)
		for _, p := range s.Spec.Ports {
			if got := resolvePort(c, p.TargetPort); got != httpPort {
				t.Errorf("Service port %s targets %v = container port %d, want the serving port %d", p.Name, p.TargetPort.String(), got, httpPort)
			}
		}
	}
	if len(s.Spec.Ports) == 0 {
		t.Error("the Service has no port")
	}
}

func checkSelector(t *testing.T, sel, podLabels map[string]string) {
	t.Helper()
	if len(sel) == 0 || !labels.SelectorFromSet(sel).Matches(labels.Set(podLabels)) {
		t.Errorf("selector %v does not match the template's labels %v", sel, podLabels)
	}
}

func zerosysContainer(t *testing.T, spec corev1.PodSpec) corev1.Container {
	t.Helper()
	for _, c := range spec.Containers {
		if c.Name == "zerosys" {
			return c
		}
	}
	t.Fatal("no container named zerosys")
	return corev1.Container{}
}

func checkPod(t *testing.T, file string, spec corev1.PodSpec) {
	t.Helper()
	errorf := func(format string, args ...any) { t.Errorf(file+": "+format, args...) }
	c := zerosysContainer(t, spec)

	// QoS: Guaranteed, computed the way the kubelet does, and integer CPUs
	// (the static CPU manager gives exclusive CPUs only then).
	if q := podQOS(spec); q != corev1.PodQOSGuaranteed {
		errorf("QoS class %s, want Guaranteed (requests == limits for cpu and memory in every container)", q)
	}
	for _, ct := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		cpu := ct.Resources.Limits[corev1.ResourceCPU]
		if cpu.MilliValue() == 0 || cpu.MilliValue()%1000 != 0 {
			errorf("container %s: cpu %s is not a whole number of CPUs", ct.Name, cpu.String())
		}
	}

	// Seccomp: the Localhost profile that allows io_uring, at pod level or
	// on the container, and not overridden elsewhere.
	sp := c.SecurityContext.SeccompProfile
	if sp == nil && spec.SecurityContext != nil {
		sp = spec.SecurityContext.SeccompProfile
	}
	if sp == nil || sp.Type != corev1.SeccompProfileTypeLocalhost || sp.LocalhostProfile == nil || *sp.LocalhostProfile != seccompProfile {
		errorf("seccomp profile %+v, want Localhost %s (RuntimeDefault blocks io_uring on containerd 2.0)", sp, seccompProfile)
	}
	if spec.SecurityContext == nil || spec.SecurityContext.SeccompProfile == nil ||
		spec.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeLocalhost {
		errorf("pod-level seccompProfile is not Localhost")
	}

	// Hardening.
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		errorf("automountServiceAccountToken must be false")
	}
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		errorf("host namespaces are shared")
	}
	sc := c.SecurityContext
	if sc == nil {
		t.Fatalf("%s: container has no securityContext", file)
	}
	nonRoot := sc.RunAsNonRoot
	if nonRoot == nil && spec.SecurityContext != nil {
		nonRoot = spec.SecurityContext.RunAsNonRoot
	}
	if nonRoot == nil || !*nonRoot {
		errorf("runAsNonRoot must be true")
	}
	if uid := runAsUser(spec, c); uid == nil || *uid == 0 {
		errorf("runAsUser %v: want a non-zero uid", uid)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		errorf("readOnlyRootFilesystem must be true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		errorf("allowPrivilegeEscalation must be false")
	}
	if sc.Privileged != nil && *sc.Privileged {
		errorf("privileged")
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		errorf("capabilities must drop ALL")
	}
	if sc.Capabilities != nil && len(sc.Capabilities.Add) > 0 {
		errorf("capabilities add %v: zerosys needs none on ports >= 1024", sc.Capabilities.Add)
	}

	// zerosys's flags: metrics on every address of the pod (probes come from
	// the kubelet, not from localhost), SQPOLL stated, drain timings.
	flags := parseArgs(c.Args)
	if flags["metrics-addr"] != fmt.Sprintf("0.0.0.0:%d", metricsPort) {
		errorf("--metrics-addr %q, want 0.0.0.0:%d so the kubelet's probes reach it", flags["metrics-addr"], metricsPort)
	}
	if !strings.HasSuffix(flags["addr"], fmt.Sprint(":", httpPort)) {
		errorf("--addr %q, want port %d", flags["addr"], httpPort)
	}
	if resolvePort(c, intstr.FromString("http")) != httpPort || resolvePort(c, intstr.FromString("metrics")) != metricsPort {
		errorf("container ports must name http=%d and metrics=%d", httpPort, metricsPort)
	}

	// Probes: readiness /readyz and liveness /healthz on the metrics port.
	checkProbe(t, file, "readiness", c, c.ReadinessProbe, "/readyz")
	checkProbe(t, file, "liveness", c, c.LivenessProbe, "/healthz")
	if c.ReadinessProbe != nil && c.LivenessProbe != nil &&
		c.ReadinessProbe.PeriodSeconds*c.ReadinessProbe.FailureThreshold > 5 {
		errorf("readiness notices a drain only after %d s; keep it under 5 s",
			c.ReadinessProbe.PeriodSeconds*c.ReadinessProbe.FailureThreshold)
	}

	// Stop sequence: preStop pause, then drain-delay + drain-timeout, all
	// within the grace period.
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil {
		t.Fatalf("%s: no preStop hook: endpoint removal races SIGTERM", file)
	}
	var preStop time.Duration
	switch h := c.Lifecycle.PreStop; {
	case h.Sleep != nil:
		preStop = time.Duration(h.Sleep.Seconds) * time.Second
	case h.Exec != nil && len(h.Exec.Command) == 2 && h.Exec.Command[0] == "sleep":
		d, err := time.ParseDuration(h.Exec.Command[1] + "s")
		if err != nil {
			errorf("preStop %v: %v", h.Exec.Command, err)
		}
		preStop = d
	default:
		errorf("preStop must be a sleep")
	}
	if preStop < 2*time.Second {
		errorf("preStop sleeps %v: too short for endpoint removal to propagate", preStop)
	}
	delay := duration(t, flags, "drain-delay", 0)
	timeout := duration(t, flags, "drain-timeout", 10*time.Second)
	if spec.TerminationGracePeriodSeconds == nil {
		t.Fatalf("%s: terminationGracePeriodSeconds unset", file)
	}
	grace := time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
	if grace <= preStop+delay+timeout {
		errorf("terminationGracePeriodSeconds %v is not longer than preStop %v + drain delay %v + drain timeout %v", grace, preStop, delay, timeout)
	}

	// The root filesystem is read-only; zerosys writes nothing, and the
	// pod mounts nothing it could need.
	for _, v := range spec.Volumes {
		if v.HostPath != nil {
			errorf("hostPath volume %s", v.Name)
		}
	}
}

func checkProbe(t *testing.T, file, kind string, c corev1.Container, p *corev1.Probe, path string) {
	t.Helper()
	if p == nil || p.HTTPGet == nil {
		t.Errorf("%s: no HTTP %s probe", file, kind)
		return
	}
	if p.HTTPGet.Path != path {
		t.Errorf("%s: %s probe path %q, want %q", file, kind, p.HTTPGet.Path, path)
	}
	if got := resolvePort(c, p.HTTPGet.Port); got != metricsPort {
		t.Errorf("%s: %s probe port %s = %d, want the metrics port %d", file, kind, p.HTTPGet.Port.String(), got, metricsPort)
	}
	if p.HTTPGet.Scheme != "" && p.HTTPGet.Scheme != corev1.URISchemeHTTP {
		t.Errorf("%s: %s probe scheme %s", file, kind, p.HTTPGet.Scheme)
	}
}

// podQOS computes the QoS class as the kubelet does (pkg/apis/core/v1/helper/qos):
// Guaranteed when every container sets cpu and memory limits and its
// requests (defaulting to the limits) equal them; BestEffort when nothing
// is set; Burstable otherwise.
func podQOS(spec corev1.PodSpec) corev1.PodQOSClass {
	tracked := []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory}
	anySet, guaranteed := false, true
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		for _, r := range tracked {
			lim, hasLim := c.Resources.Limits[r]
			req, hasReq := c.Resources.Requests[r]
			if hasLim && !lim.IsZero() || hasReq && !req.IsZero() {
				anySet = true
			}
			if !hasLim || lim.IsZero() {
				guaranteed = false
				continue
			}
			if !hasReq {
				req = lim // the API server defaults requests to limits
			}
			if req.Cmp(lim) != 0 {
				guaranteed = false
			}
		}
		for r, req := range c.Resources.Requests {
			if lim, ok := c.Resources.Limits[r]; slices.Contains(tracked, r) && (!ok || !equal(req, lim)) {
				guaranteed = false
			}
		}
	}
	switch {
	case !anySet:
		return corev1.PodQOSBestEffort
	case guaranteed:
		return corev1.PodQOSGuaranteed
	}
	return corev1.PodQOSBurstable
}

func equal(a, b resource.Quantity) bool { return a.Cmp(b) == 0 }

func runAsUser(spec corev1.PodSpec, c corev1.Container) *int64 {
	if c.SecurityContext != nil && c.SecurityContext.RunAsUser != nil {
		return c.SecurityContext.RunAsUser
	}
	if spec.SecurityContext != nil {
		return spec.SecurityContext.RunAsUser
	}
	return nil
}

func resolvePort(c corev1.Container, p intstr.IntOrString) int {
	if p.Type == intstr.Int {
		return p.IntValue()
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort)
		}
	}
	return -1
}

// parseArgs reads --name=value and --name value into a map.
func parseArgs(args []string) map[string]string {
	m := map[string]string{}
	for i := 0; i < len(args); i++ {
		a := strings.TrimLeft(args[i], "-")
		if a == args[i] {
			continue
		}
		if k, v, ok := strings.Cut(a, "="); ok {
			m[k] = v
		} else if i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			m[a] = args[i+1]
			i++
		} else {
			m[a] = "true"
		}
	}
	return m
}

func duration(t *testing.T, flags map[string]string, name string, def time.Duration) time.Duration {
	t.Helper()
	s, ok := flags[name]
	if !ok {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Errorf("--%s=%q: %v", name, s, err)
	}
	return d
}

// Every flag in the manifests must exist in the zerosys binary, when one is
// at hand (ZEROSYS_BIN, set by make test-deploy).
func TestArgsAreZerosysFlags(t *testing.T) {
	bin := os.Getenv("ZEROSYS_BIN")
	if bin == "" {
		t.Skip("ZEROSYS_BIN not set")
	}
	help, err := runHelp(bin)
	if err != nil {
		t.Fatal(err)
	}
	var d appsv1.Deployment
	decode(t, "deployment.yaml", &d)
	var ds appsv1.DaemonSet
	decode(t, "daemonset.yaml", &ds)
	for _, spec := range []corev1.PodSpec{d.Spec.Template.Spec, ds.Spec.Template.Spec} {
		for name := range parseArgs(zerosysContainer(t, spec).Args) {
			if !strings.Contains(help, "--"+name+" ") {
				t.Errorf("--%s is not a flag of %s", name, bin)
			}
		}
	}
}
