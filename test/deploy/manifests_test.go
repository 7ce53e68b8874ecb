package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"
)

// serveFlags is the set of `switchyard serve` flags, read from the
// binary's own -h, so a manifest cannot name a flag the binary lacks.
var serveFlags = sync.OnceValues(func() (map[string]bool, error) {
	out, _ := exec.Command("go", "run", "../../cmd/switchyard", "serve", "-h").CombinedOutput()
	flags := map[string]bool{}
	re := regexp.MustCompile(`^  -([a-z0-9-]+)`)
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			flags[m[1]] = true
		}
	}
	if len(flags) < 30 {
		return nil, errors.New("serve -h listed too few flags:\n" + string(out))
	}
	return flags, nil
})

func mustServeFlags(t *testing.T) map[string]bool {
	t.Helper()
	f, err := serveFlags()
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// checkServeArgs checks a `serve` command line: every --flag exists.
func checkServeArgs(t *testing.T, where string, args []string) {
	t.Helper()
	flags := mustServeFlags(t)
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !flags[name] {
			t.Errorf("%s: serve has no flag --%s", where, name)
		}
	}
}

// checkConfigKeys checks a peer config file: every key is a serve flag
// with _ for -, and answers the file.
func checkConfigKeys(t *testing.T, where string, data []byte) map[string]any {
	t.Helper()
	var cfg map[string]any
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&cfg); err != nil {
		t.Fatalf("%s: not a JSON object: %v", where, err)
	}
	flags := mustServeFlags(t)
	for k := range cfg {
		if !flags[strings.ReplaceAll(k, "_", "-")] {
			t.Errorf("%s: key %q is not a serve flag", where, k)
		}
	}
	return cfg
}

type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name      string `yaml:"name"`
		Namespace string `yaml:"namespace"`
	} `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Spec       yaml.Node         `yaml:"spec"`
}

type k8sPort struct {
	Name          string `yaml:"name"`
	ContainerPort int    `yaml:"containerPort"`
	Port          int    `yaml:"port"`
	TargetPort    any    `yaml:"targetPort"`
	Protocol      string `yaml:"protocol"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path   string `yaml:"path"`
		Port   any    `yaml:"port"`
		Scheme string `yaml:"scheme"`
	} `yaml:"httpGet"`
}

type k8sStatefulSet struct {
	ServiceName string `yaml:"serviceName"`
	Replicas    int    `yaml:"replicas"`
	Selector    struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	} `yaml:"selector"`
	Template struct {
		Metadata struct {
			Labels map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
		Spec struct {
			Containers []struct {
				Name  string `yaml:"name"`
				Args  []string
				Env   []struct{ Name string }
				Ports []k8sPort `yaml:"ports"`
				// Probes on the admin listener.
				LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
				ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
				VolumeMounts   []struct {
					Name      string `yaml:"name"`
					MountPath string `yaml:"mountPath"`
				} `yaml:"volumeMounts"`
			} `yaml:"containers"`
			Volumes []struct {
				Name      string `yaml:"name"`
				ConfigMap *struct {
					Name string `yaml:"name"`
				} `yaml:"configMap"`
				Secret *struct {
					SecretName string `yaml:"secretName"`
				} `yaml:"secret"`
			} `yaml:"volumes"`
		} `yaml:"spec"`
	} `yaml:"template"`
	VolumeClaimTemplates []struct {
		Metadata struct {
			Name string `yaml:"name"`
		} `yaml:"metadata"`
	} `yaml:"volumeClaimTemplates"`
}

type k8sService struct {
	ClusterIP string            `yaml:"clusterIP"`
	Selector  map[string]string `yaml:"selector"`
	Ports     []k8sPort         `yaml:"ports"`
}

func loadManifests(t *testing.T) []k8sObject {
	t.Helper()
	files, err := filepath.Glob("../../deploy/kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in deploy/kubernetes: %v", err)
	}
	var objs []k8sObject
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var o k8sObject
			if err := dec.Decode(&o); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				t.Fatalf("%s: %v", f, err)
			}
			if o.Kind == "" || o.APIVersion == "" || o.Metadata.Name == "" {
				t.Fatalf("%s: an object without kind, apiVersion or name: %+v", f, o)
			}
			if o.Kind != "Namespace" && o.Metadata.Namespace != "switchyard" {
				t.Errorf("%s: %s %s is not in namespace switchyard", f, o.Kind, o.Metadata.Name)
			}
			objs = append(objs, o)
		}
	}
	return objs
}

func portNumber(ports []k8sPort, ref any) (k8sPort, bool) {
	for _, p := range ports {
		switch r := ref.(type) {
		case string:
			if p.Name == r {
				return p, true
			}
		case int:
			if p.ContainerPort == r {
				return p, true
			}
		}
	}
	return k8sPort{}, false
}

func listenPort(t *testing.T, cfg map[string]any, key string) int {
	t.Helper()
	s, _ := cfg[key].(string)
	i := strings.LastIndex(s, ":")
	p, err := strconv.Atoi(s[i+1:])
	if i < 0 || err != nil {
		t.Fatalf("config %s %q has no port", key, s)
	}
	return p
}

// TestKubernetesManifests parses every manifest in deploy/kubernetes and
// checks them against the binary: the container's serve flags exist, the
// ConfigMap's peer.json keys are serve flags, the container ports are the
// ports the config listens on, the probes are /healthz and /readyz on the
// admin port, the Services target ports the container names, every
// ConfigMap and Secret a volume names is defined, and every file the
// config names lies in a mounted volume and exists as a key of it.
func TestKubernetesManifests(t *testing.T) {
	objs := loadManifests(t)
	byKind := map[string]map[string]k8sObject{}
	for _, o := range objs {
		if byKind[o.Kind] == nil {
			byKind[o.Kind] = map[string]k8sObject{}
		}
		byKind[o.Kind][o.Metadata.Name] = o
	}
	for _, kind := range []string{"StatefulSet", "Service", "ConfigMap", "Secret", "PodDisruptionBudget"} {
		if len(byKind[kind]) == 0 {
			t.Fatalf("no %s in deploy/kubernetes", kind)
		}
	}
	stsObj := byKind["StatefulSet"]["switchyard"]
	var sts k8sStatefulSet
	if err := stsObj.Spec.Decode(&sts); err != nil {
		t.Fatal(err)
	}
	if len(sts.Template.Spec.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(sts.Template.Spec.Containers))
	}
	c := sts.Template.Spec.Containers[0]
	if len(c.Args) == 0 || c.Args[0] != "serve" {
		t.Fatalf("container args %v: want serve ...", c.Args)
	}
	checkServeArgs(t, "statefulset args", c.Args[1:])
	env := map[string]bool{}
	for _, e := range c.Env {
		env[e.Name] = true
	}
	for _, a := range c.Args {
		for _, m := range regexp.MustCompile(`\$\(([A-Z_]+)\)`).FindAllStringSubmatch(a, -1) {
			if !env[m[1]] {
				t.Errorf("arg %q uses $(%s), which the container's env does not define", a, m[1])
			}
		}
	}

	// The config file: from the ConfigMap the --config flag points into.
	configPath := ""
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--config="); ok {
			configPath = v
		}
	}
	mounts := map[string]string{} // mount path -> volume name
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m.Name
	}
	volumes := map[string]k8sObject{} // volume name -> its ConfigMap or Secret
	for _, v := range sts.Template.Spec.Volumes {
		switch {
		case v.ConfigMap != nil:
			o, ok := byKind["ConfigMap"][v.ConfigMap.Name]
			if !ok {
				t.Errorf("volume %s names ConfigMap %s, which no manifest defines", v.Name, v.ConfigMap.Name)
			}
			volumes[v.Name] = o
		case v.Secret != nil:
			o, ok := byKind["Secret"][v.Secret.SecretName]
			if !ok {
				t.Errorf("volume %s names Secret %s, which no manifest defines", v.Name, v.Secret.SecretName)
			}
			volumes[v.Name] = o
		default:
			t.Errorf("volume %s: neither a ConfigMap nor a Secret", v.Name)
		}
	}
	for _, vct := range sts.VolumeClaimTemplates {
		mounts["(claim)"+vct.Metadata.Name] = vct.Metadata.Name
	}
	for path, name := range mounts {
		if _, ok := volumes[name]; !ok && !strings.HasPrefix(path, "/data") && !strings.HasPrefix(path, "(claim)") {
			t.Errorf("mount %s names volume %s, which the pod does not define", path, name)
		}
	}
	// fileIn finds the ConfigMap or Secret key a file path resolves to.
	fileIn := func(path string) ([]byte, bool) {
		dir, key := filepath.Dir(path), filepath.Base(path)
		o, ok := volumes[mounts[dir]]
		if !ok {
			return nil, false
		}
		if v, ok := o.Data[key]; ok {
			return []byte(v), true
		}
		v, ok := o.StringData[key]
		return []byte(v), ok
	}
	data, ok := fileIn(configPath)
	if !ok {
		t.Fatalf("--config=%s is not a key of a mounted ConfigMap", configPath)
	}
	cfg := checkConfigKeys(t, "configmap peer.json", data)
	for k, v := range cfg {
		if !strings.HasSuffix(k, "_file") {
			continue
		}
		if _, ok := fileIn(v.(string)); !ok {
			t.Errorf("config %s = %s: no mounted ConfigMap or Secret holds that file", k, v)
		}
	}
	if dd, _ := cfg["data_dir"].(string); mounts[dd] != "data" {
		t.Errorf("data_dir %q is not the volume claim's mount", dd)
	}

	// Ports: the container declares the ports the config listens on.
	for key, name := range map[string]string{"kafka_listen": "kafka", "admin_listen": "admin", "raft_listen": "peer", "gossip_listen": "gossip-tcp"} {
		p, ok := portNumber(c.Ports, name)
		if !ok || p.ContainerPort != listenPort(t, cfg, key) {
			t.Errorf("container port %s = %+v, config %s = %v", name, p, key, cfg[key])
		}
	}
	if p, ok := portNumber(c.Ports, "gossip-udp"); !ok || p.Protocol != "UDP" || p.ContainerPort != listenPort(t, cfg, "gossip_listen") {
		t.Errorf("gossip UDP port: %+v", p)
	}
	// Probes: /healthz and /readyz on the admin port, HTTPS when admin TLS is on.
	for name, want := range map[string]*k8sProbe{"/healthz": c.LivenessProbe, "/readyz": c.ReadinessProbe} {
		if want == nil || want.HTTPGet == nil {
			t.Errorf("no httpGet probe for %s", name)
			continue
		}
		g := want.HTTPGet
		if g.Path != name {
			t.Errorf("probe path %s, want %s", g.Path, name)
		}
		if p, ok := portNumber(c.Ports, g.Port); !ok || p.ContainerPort != listenPort(t, cfg, "admin_listen") {
			t.Errorf("probe %s on port %v, not the admin port", name, g.Port)
		}
		if _, tls := cfg["admin_tls_cert_file"]; tls != (g.Scheme == "HTTPS") {
			t.Errorf("probe %s scheme %q with admin TLS %v", name, g.Scheme, tls)
		}
	}
	// Services select the pods and target ports the container names.
	labels := sts.Template.Metadata.Labels
	for name, o := range byKind["Service"] {
		var svc k8sService
		if err := o.Spec.Decode(&svc); err != nil {
			t.Fatal(err)
		}
		for k, v := range svc.Selector {
			if labels[k] != v {
				t.Errorf("service %s selects %s=%s, which the pods do not carry", name, k, v)
			}
		}
		for _, p := range svc.Ports {
			cp, ok := portNumber(c.Ports, p.TargetPort)
			if !ok {
				t.Errorf("service %s port %s targets %v, which the container does not declare", name, p.Name, p.TargetPort)
				continue
			}
			if proto := p.Protocol + cp.Protocol; p.Protocol != cp.Protocol && proto != "TCP" {
				t.Errorf("service %s port %s is %s, container port %s", name, p.Name, p.Protocol, cp.Protocol)
			}
		}
	}
	if svc, ok := byKind["Service"][sts.ServiceName]; !ok {
		t.Errorf("serviceName %s is not a defined Service", sts.ServiceName)
	} else {
		var s k8sService
		_ = svc.Spec.Decode(&s)
		if s.ClusterIP != "None" {
			t.Errorf("serviceName %s is not headless", sts.ServiceName)
		}
	}
	for k, v := range sts.Selector.MatchLabels {
		if labels[k] != v {
			t.Errorf("the StatefulSet's selector %s=%s does not match its pods", k, v)
		}
	}
	// bootstrap_expect is the replica count, and the join list names
	// the pods of the headless Service.
	if be, _ := cfg["bootstrap_expect"].(float64); int(be) != sts.Replicas {
		t.Errorf("bootstrap_expect %v, replicas %d", cfg["bootstrap_expect"], sts.Replicas)
	}
	join, _ := cfg["join"].([]any)
	if len(join) != sts.Replicas {
		t.Errorf("join lists %d peers, replicas %d", len(join), sts.Replicas)
	}
	for i, j := range join {
		want := stsObj.Metadata.Name + "-" + strconv.Itoa(i) + "." + sts.ServiceName + "."
		if s, _ := j.(string); !strings.HasPrefix(s, want) || !strings.HasSuffix(s, ":"+strconv.Itoa(listenPort(t, cfg, "gossip_listen"))) {
			t.Errorf("join %d = %v, want %s...:gossip port", i, j, want)
		}
	}
	var pdb struct {
		MaxUnavailable int `yaml:"maxUnavailable"`
		Selector       struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
	}
	for _, o := range byKind["PodDisruptionBudget"] {
		if err := o.Spec.Decode(&pdb); err != nil {
			t.Fatal(err)
		}
		if pdb.MaxUnavailable != 1 {
			t.Errorf("PodDisruptionBudget maxUnavailable %d: a 3-voter cluster keeps quorum with one down only", pdb.MaxUnavailable)
		}
		for k, v := range pdb.Selector.MatchLabels {
			if labels[k] != v {
				t.Errorf("PodDisruptionBudget selects %s=%s, not the pods", k, v)
			}
		}
	}
}

// TestSystemdAndComposeFlags: the systemd unit's and the compose file's
// serve command lines name existing flags, and their config files' keys
// are serve flags.
func TestSystemdAndComposeFlags(t *testing.T) {
	unit, err := os.ReadFile("../../deploy/systemd/switchyard.service")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^ExecStart=(\S+) serve (.*)$`).FindSubmatch(unit)
	if m == nil {
		t.Fatal("switchyard.service: no ExecStart=... serve line")
	}
	checkServeArgs(t, "switchyard.service", strings.Fields(string(m[2])))
	for _, f := range []string{"../../deploy/config/peer.example.json", "../../deploy/compose/peer.json"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		checkConfigKeys(t, f, b)
	}

	b, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Command []string `yaml:"command"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	peers := 0
	for name, s := range compose.Services {
		if len(s.Command) > 0 && s.Command[0] == "serve" {
			peers++
			checkServeArgs(t, "compose "+name, s.Command[1:])
		}
	}
	if peers != 3 {
		t.Errorf("compose.yaml runs %d peers, want 3", peers)
	}
}
