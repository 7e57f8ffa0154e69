{{/* The image reference: repository, then the digest or the tag (default: appVersion). */}}
{{- define "lbspeaker.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{/* Labels of every object; selectors use only name and component (one installation per
cluster: the ClusterRoles and the operator's Lease have fixed names). */}}
{{- define "lbspeaker.labels" -}}
app.kubernetes.io/name: lbspeaker
app.kubernetes.io/part-of: lbspeaker
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* loadBalancer.dataplane as the flag's value: off, on or best-effort (YAML booleans
accepted, as unquoted on/off are read as such). */}}
{{- define "lbspeaker.dataplane" -}}
{{- $d := .Values.loadBalancer.dataplane -}}
{{- if kindIs "bool" $d -}}
{{ ternary "on" "off" $d }}
{{- else if has (toString $d) (list "off" "on" "best-effort") -}}
{{ $d }}
{{- else -}}
{{ fail (printf "loadBalancer.dataplane must be off, on or best-effort, not %v" $d) }}
{{- end -}}
{{- end -}}

{{/* The agent's capabilities: only what it uses (docs/operations.md says why each). */}}
{{- define "lbspeaker.agentCapabilities" -}}
- NET_RAW
{{- if .Values.bgpControlPlane.enabled }}
- NET_BIND_SERVICE
{{- end }}
{{- if ne (include "lbspeaker.dataplane" .) "off" }}
- NET_ADMIN
{{- if .Values.bpf.sysAdmin }}
- SYS_ADMIN
{{- else }}
- BPF
- PERFMON
{{- end }}
{{- end }}
{{- end -}}

{{/* --metrics-addr's value from a prometheus block (listenAddress, port): IPv6 in brackets. */}}
{{- define "lbspeaker.metricsAddr" -}}
{{- $a := toString .listenAddress -}}
{{- if contains ":" $a -}}
[{{ $a }}]:{{ .port }}
{{- else -}}
{{ $a }}:{{ .port }}
{{- end -}}
{{- end -}}
