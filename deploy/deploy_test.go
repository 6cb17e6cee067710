// Package deploy holds no code: its tests check the deployment files in
// this directory — the compose stack's hardening and the Kubernetes
// manifests, rendered with kustomize, against the Pod Security Standard
// "restricted" and this project's own rules (docs/security/hardening.md).
package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

type obj = map[string]any

// get walks a decoded YAML document by keys; nil when a step is missing.
func get(v any, path ...string) any {
	for _, k := range path {
		m, ok := v.(obj)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func str(v any, path ...string) string { s, _ := get(v, path...).(string); return s }

func list(v any, path ...string) []any { l, _ := get(v, path...).([]any); return l }

func strs(v any, path ...string) []string {
	var out []string
	for _, e := range list(v, path...) {
		out = append(out, fmt.Sprint(e))
	}
	return out
}

func readYAML(t *testing.T, path string) obj {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc obj
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return doc
}

// pinned reports whether an image names a tag other than latest.
func pinned(image string) bool {
	i := strings.LastIndex(image, ":")
	return i > strings.LastIndex(image, "/") && image[i+1:] != "latest" && image[i+1:] != ""
}

var secretName = regexp.MustCompile(`(?i)password|secret|token|api_key|database_url|valkey_url`)

func TestComposeHardening(t *testing.T) {
	const dir = "compose"
	doc := readYAML(t, filepath.Join(dir, "compose.yaml"))
	services, _ := get(doc, "services").(obj)
	for _, want := range []string{"codingbrain", "postgres", "valkey", "prometheus", "grafana"} {
		if services[want] == nil {
			t.Errorf("compose: no %s service", want)
		}
	}
	secrets, _ := get(doc, "secrets").(obj)
	for name, s := range services {
		if err := checkComposeService(dir, s, secrets); err != nil {
			t.Errorf("compose service %s: %v", name, err)
		}
	}
	for name, s := range secrets {
		if f := str(s, "file"); !strings.HasPrefix(f, "./secrets/") {
			t.Errorf("compose secret %s: file %q, want one under ./secrets/ (kept out of git)", name, f)
		}
	}
	for _, svc := range []string{"postgres", "valkey"} {
		if nets := strs(services[svc], "networks"); !slices.Equal(nets, []string{"backend"}) {
			t.Errorf("compose: %s on networks %v, want only the internal backend", svc, nets)
		}
	}
	if get(doc, "networks", "backend", "internal") != true {
		t.Error("compose: the backend network is not internal")
	}
}

// checkComposeService applies the hardening rules to one service.
func checkComposeService(dir string, s any, secrets obj) error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if !slices.Equal(strs(s, "cap_drop"), []string{"ALL"}) {
		bad("cap_drop %v, want [ALL]", strs(s, "cap_drop"))
	}
	if len(strs(s, "cap_add")) > 0 {
		bad("cap_add %v, want none", strs(s, "cap_add"))
	}
	if !slices.Contains(strs(s, "security_opt"), "no-new-privileges:true") {
		bad("security_opt %v lacks no-new-privileges:true", strs(s, "security_opt"))
	}
	if get(s, "read_only") != true {
		bad("read_only is not true")
	}
	if get(s, "privileged") == true {
		bad("privileged")
	}
	if u := str(s, "user"); u == "" || u == "root" || u == "0" || strings.HasPrefix(u, "0:") {
		bad("user %q, want a non-root UID", u)
	}
	if len(list(s, "healthcheck", "test")) == 0 {
		bad("no healthcheck")
	}
	if str(s, "deploy", "resources", "limits", "memory") == "" || str(s, "deploy", "resources", "limits", "cpus") == "" {
		bad("no memory and CPU limits (deploy.resources.limits)")
	}
	if get(s, "pids_limit") == nil {
		bad("no pids_limit")
	}
	if img := str(s, "image"); !pinned(strings.TrimSuffix(strings.TrimPrefix(img, "${CODINGBRAIN_IMAGE:-"), "}")) {
		bad("image %q is not pinned to a version", img)
	}
	env, _ := get(s, "environment").(obj)
	for k, v := range env {
		val := fmt.Sprint(v)
		if strings.HasSuffix(k, "_FILE") || strings.HasSuffix(k, "__FILE") {
			if !strings.HasPrefix(val, "/run/secrets/") {
				bad("%s=%q: secret files come from /run/secrets", k, val)
			}
			continue
		}
		if secretName.MatchString(k) {
			bad("environment %s holds a secret in the compose file; use a secret file", k)
		}
	}
	for _, name := range strs(s, "secrets") {
		if secrets[name] == nil {
			bad("secret %s is not declared", name)
		}
	}
	for _, p := range strs(s, "ports") {
		if !strings.HasPrefix(p, "127.0.0.1:") {
			bad("port %q is published beyond loopback", p)
		}
	}
	for _, v := range strs(s, "volumes") {
		src, _, _ := strings.Cut(v, ":")
		if !strings.HasPrefix(src, ".") {
			continue // a named volume
		}
		if !strings.HasSuffix(v, ":ro") {
			bad("bind mount %q is writable; mount configuration read-only", v)
		}
		if _, err := os.Stat(filepath.Join(dir, src)); err != nil {
			bad("bind mount %q: %v", v, err)
		}
	}
	return errors.Join(errs...)
}

// kustomize renders an overlay with the kustomize binary, or kubectl's
// built-in one. Without either the test is skipped, unless
// CODINGBRAIN_TEST_REQUIRE_DEPLOY_TOOLS=1 (.ci/run) makes it a failure.
func kustomize(t *testing.T, dir string) []obj {
	t.Helper()
	var cmd *exec.Cmd
	if p, err := exec.LookPath("kustomize"); err == nil {
		cmd = exec.Command(p, "build", dir)
	} else if p, err := exec.LookPath("kubectl"); err == nil {
		cmd = exec.Command(p, "kustomize", dir)
	} else {
		if os.Getenv("CODINGBRAIN_TEST_REQUIRE_DEPLOY_TOOLS") == "1" {
			t.Fatal("neither kustomize nor kubectl is installed (.ci/tools.sh installs kustomize)")
		}
		t.Skip("neither kustomize nor kubectl is installed; .ci/tools.sh installs kustomize")
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, stderr.String())
	}
	var docs []obj
	d := yaml.NewDecoder(bytes.NewReader(out))
	for {
		var doc obj
		if err := d.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("%s: rendered YAML: %v", dir, err)
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
	return docs
}

// podSpec returns the pod template's spec of a workload, or nil.
func podSpec(o obj) any {
	switch str(o, "kind") {
	case "Pod":
		return get(o, "spec")
	case "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "Rollout":
		return get(o, "spec", "template", "spec")
	case "CronJob":
		return get(o, "spec", "jobTemplate", "spec", "template", "spec")
	}
	return nil
}

// allowedVolumes are the volume types the restricted profile admits.
var allowedVolumes = []string{"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}

// checkRestricted reports every way a pod spec falls short of the Pod
// Security Standard "restricted" (v1.30+) and of this project's additions:
// read-only root, resource limits, no service account token, pinned image.
func checkRestricted(spec any) error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	for _, k := range []string{"hostNetwork", "hostPID", "hostIPC"} {
		if get(spec, k) == true {
			bad("%s is true", k)
		}
	}
	if get(spec, "automountServiceAccountToken") != false {
		bad("automountServiceAccountToken is not false")
	}
	for _, v := range list(spec, "volumes") {
		for k := range v.(obj) {
			if k != "name" && !slices.Contains(allowedVolumes, k) {
				bad("volume %s has the type %s, not allowed in restricted", str(v, "name"), k)
			}
		}
	}
	podNonRoot := get(spec, "securityContext", "runAsNonRoot") == true
	podSeccomp := str(spec, "securityContext", "seccompProfile", "type")
	if u, ok := get(spec, "securityContext", "runAsUser").(int); ok && u == 0 {
		bad("pod runAsUser 0")
	}
	containers := append(list(spec, "initContainers"), list(spec, "containers")...)
	if len(containers) == 0 {
		bad("no containers")
	}
	for _, c := range containers {
		name := str(c, "name")
		sc := get(c, "securityContext")
		if get(sc, "allowPrivilegeEscalation") != false {
			bad("container %s: allowPrivilegeEscalation is not false", name)
		}
		if get(sc, "privileged") == true {
			bad("container %s: privileged", name)
		}
		if !slices.Contains(strs(sc, "capabilities", "drop"), "ALL") {
			bad("container %s: capabilities.drop lacks ALL", name)
		}
		for _, add := range strs(sc, "capabilities", "add") {
			if add != "NET_BIND_SERVICE" {
				bad("container %s: adds capability %s", name, add)
			}
		}
		if !podNonRoot && get(sc, "runAsNonRoot") != true {
			bad("container %s: runAsNonRoot is set neither on the pod nor on the container", name)
		}
		if u, ok := get(sc, "runAsUser").(int); ok && u == 0 {
			bad("container %s: runAsUser 0", name)
		}
		switch t := str(sc, "seccompProfile", "type"); {
		case t == "RuntimeDefault" || t == "Localhost":
		case t == "" && (podSeccomp == "RuntimeDefault" || podSeccomp == "Localhost"):
		default:
			bad("container %s: seccompProfile %q, want RuntimeDefault or Localhost (on the pod or the container)", name, t)
		}
		if get(sc, "readOnlyRootFilesystem") != true {
			bad("container %s: readOnlyRootFilesystem is not true", name)
		}
		for _, p := range list(c, "ports") {
			if get(p, "hostPort") != nil {
				bad("container %s: hostPort", name)
			}
		}
		if str(c, "resources", "limits", "memory") == "" || get(c, "resources", "limits", "cpu") == nil {
			bad("container %s: no memory and CPU limits", name)
		}
		if !pinned(str(c, "image")) {
			bad("container %s: image %q is not pinned", name, str(c, "image"))
		}
	}
	return errors.Join(errs...)
}

// TestRestrictedCheckerRejects keeps the checker honest: a spec that breaks
// each rule is reported for it.
func TestRestrictedCheckerRejects(t *testing.T) {
	spec := obj{
		"hostNetwork": true,
		"volumes":     []any{obj{"name": "host", "hostPath": obj{"path": "/"}}},
		"containers": []any{obj{
			"name": "c", "image": "example/app:latest",
			"securityContext": obj{"capabilities": obj{"add": []any{"SYS_ADMIN"}}, "runAsUser": 0},
		}},
	}
	err := checkRestricted(spec)
	if err == nil {
		t.Fatal("a privileged spec passed")
	}
	for _, want := range []string{"hostNetwork", "automountServiceAccountToken", "hostPath", "allowPrivilegeEscalation",
		"capabilities.drop", "SYS_ADMIN", "runAsNonRoot", "runAsUser 0", "seccompProfile", "readOnlyRootFilesystem", "limits", "not pinned"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("checkRestricted missed %q:\n%v", want, err)
		}
	}
	if err := checkComposeService("compose", obj{"image": "postgres:latest", "environment": obj{"POSTGRES_PASSWORD": "x"}, "ports": []any{"5432:5432"}}, nil); err == nil ||
		!strings.Contains(err.Error(), "POSTGRES_PASSWORD") || !strings.Contains(err.Error(), "cap_drop") || !strings.Contains(err.Error(), "beyond loopback") {
		t.Errorf("checkComposeService on a bare service: %v", err)
	}
}

func byKind(docs []obj, kind string) []obj {
	var out []obj
	for _, d := range docs {
		if str(d, "kind") == kind {
			out = append(out, d)
		}
	}
	return out
}

func named(docs []obj, kind, name string) obj {
	for _, d := range byKind(docs, kind) {
		if str(d, "metadata", "name") == name {
			return d
		}
	}
	return nil
}

func TestKubernetesManifests(t *testing.T) {
	rules, err := os.ReadFile(filepath.Join("prometheus", "recording_rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, overlay := range []string{"production", "canary", "blue-green"} {
		t.Run(overlay, func(t *testing.T) {
			docs := kustomize(t, filepath.Join("kubernetes", "overlays", overlay))
			pods := 0
			for _, d := range docs {
				if ns := str(d, "metadata", "namespace"); str(d, "kind") != "Namespace" && ns != "codingbrain" {
					t.Errorf("%s %s: namespace %q, want codingbrain", str(d, "kind"), str(d, "metadata", "name"), ns)
				}
				if str(d, "kind") == "Secret" {
					t.Errorf("Secret %s is rendered from the repository; secrets are created out of band", str(d, "metadata", "name"))
				}
				spec := podSpec(d)
				if spec == nil {
					continue
				}
				pods++
				if err := checkRestricted(spec); err != nil {
					t.Errorf("%s %s is not restricted:\n%v", str(d, "kind"), str(d, "metadata", "name"), err)
				}
			}
			if pods != 4 {
				t.Errorf("%d pod templates, want 4 (server, backup, backup verify, migrate)", pods)
			}
			if ns := named(docs, "Namespace", "codingbrain"); str(ns, "metadata", "labels", "pod-security.kubernetes.io/enforce") != "restricted" {
				t.Error("the namespace does not enforce the restricted profile")
			}
			if sa := named(docs, "ServiceAccount", "codingbrain"); get(sa, "automountServiceAccountToken") != false {
				t.Error("ServiceAccount codingbrain mounts its token")
			}
			for _, k := range []string{"PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy"} {
				if len(byKind(docs, k)) == 0 {
					t.Errorf("no %s", k)
				}
			}
			dep := named(docs, "Deployment", "codingbrain")
			c := list(podSpec(dep), "containers")
			if len(c) != 1 || str(c[0], "livenessProbe", "httpGet", "path") != "/health/live" || str(c[0], "readinessProbe", "httpGet", "path") != "/health/ready" {
				t.Errorf("server probes: liveness %q, readiness %q; want /health/live and /health/ready",
					str(c[0], "livenessProbe", "httpGet", "path"), str(c[0], "readinessProbe", "httpGet", "path"))
			}
			cron := map[string]string{}
			for _, cj := range byKind(docs, "CronJob") {
				cron[str(cj, "metadata", "name")] = strings.Join(strs(list(podSpec(cj), "containers")[0], "args"), " ")
			}
			if !strings.HasPrefix(cron["codingbrain-backup"], "backup create --to ") {
				t.Errorf("backup CronJob runs %q", cron["codingbrain-backup"])
			}
			if v := cron["codingbrain-backup-verify"]; !strings.HasPrefix(v, "backup verify --from ") || !strings.Contains(v, "--max-age 26h") {
				t.Errorf("backup verify CronJob runs %q", v)
			}
			if m := named(docs, "CronJob", "codingbrain-migrate"); cron["codingbrain-migrate"] != "migrate up" || get(m, "spec", "suspend") != true {
				t.Errorf("migrate CronJob runs %q, suspended %v; want a suspended template of migrate up", cron["codingbrain-migrate"], get(m, "spec", "suspend"))
			}

			hpaTarget := str(named(docs, "HorizontalPodAutoscaler", "codingbrain"), "spec", "scaleTargetRef", "kind")
			ro := named(docs, "Rollout", "codingbrain")
			switch overlay {
			case "production":
				if ro != nil || hpaTarget != "Deployment" {
					t.Errorf("production: Rollout %v, HPA target %s; want none and the Deployment", ro != nil, hpaTarget)
				}
				return
			}
			if ro == nil || hpaTarget != "Rollout" || get(dep, "spec", "replicas") != 0 {
				t.Fatalf("%s: Rollout %v, HPA target %s, Deployment replicas %v; want a Rollout owning the pods", overlay, ro != nil, hpaTarget, get(dep, "spec", "replicas"))
			}
			if str(ro, "spec", "workloadRef", "name") != "codingbrain" {
				t.Error("the Rollout does not take its pod template from the Deployment")
			}
			tmpl := named(docs, "AnalysisTemplate", "codingbrain-slo")
			var queries []string
			for _, m := range list(tmpl, "spec", "metrics") {
				queries = append(queries, str(m, "provider", "prometheus", "query"))
			}
			for _, want := range []string{`slo="availability"`, `slo="search-latency"`} {
				if !slices.ContainsFunc(queries, func(q string) bool {
					return strings.Contains(q, "slo:sli_error:ratio_rate5m") && strings.Contains(q, want)
				}) {
					t.Errorf("AnalysisTemplate codingbrain-slo has no query of slo:sli_error:ratio_rate5m{%s}", want)
				}
			}
			if !bytes.Contains(rules, []byte("record: slo:sli_error:ratio_rate5m")) {
				t.Error("recording_rules.yml no longer records slo:sli_error:ratio_rate5m")
			}
			service := func(name string) {
				if named(docs, "Service", name) == nil {
					t.Errorf("the Rollout names Service %q, which is not rendered", name)
				}
			}
			if overlay == "canary" {
				service(str(ro, "spec", "strategy", "canary", "stableService"))
				service(str(ro, "spec", "strategy", "canary", "canaryService"))
				var weights []int
				analyses := 0
				for _, s := range list(ro, "spec", "strategy", "canary", "steps") {
					if w, ok := get(s, "setWeight").(int); ok {
						weights = append(weights, w)
					}
					if get(s, "analysis") != nil {
						analyses++
					}
				}
				if !slices.IsSorted(weights) || len(weights) < 3 || weights[len(weights)-1] != 100 || analyses < len(weights)-1 {
					t.Errorf("canary steps: weights %v, %d analyses; want rising weights to 100 with an analysis between", weights, analyses)
				}
			} else {
				bg := get(ro, "spec", "strategy", "blueGreen")
				service(str(bg, "activeService"))
				service(str(bg, "previewService"))
				if get(bg, "autoPromotionEnabled") != false || get(bg, "prePromotionAnalysis") == nil || get(bg, "postPromotionAnalysis") == nil {
					t.Error("blue-green: want manual promotion with pre- and post-promotion analysis")
				}
			}
		})
	}
}
