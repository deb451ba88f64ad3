{{/*
Names and labels, shaped like the O-RAN SC xApp chart: the base name is the release name,
ConfigMaps <name>-appconfig and <name>-appenv, Services service-<name>-http and
service-<name>-zmq, labels app (<namespace>-<name>) and release.
*/}}

{{/* The base name of every object: a DNS label (63 characters at most). */}}
{{- define "wmfm-xapp.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Service names, as O-RAN SC names them: service-<name>-<kind>. */}}
{{- define "wmfm-xapp.service.http" -}}
{{- printf "service-%s-http" (include "wmfm-xapp.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- define "wmfm-xapp.service.zmq" -}}
{{- printf "service-%s-zmq" (include "wmfm-xapp.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "wmfm-xapp.selectorLabels" -}}
app: {{ printf "%s-%s" .Release.Namespace (include "wmfm-xapp.fullname" .) | trunc 63 | trimSuffix "-" }}
release: {{ .Release.Name }}
{{- end -}}

{{- define "wmfm-xapp.labels" -}}
{{ include "wmfm-xapp.selectorLabels" . }}
chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
heritage: {{ .Release.Service }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The container image: the CPU one, or the TensorRT one with gpu.enabled. */}}
{{- define "wmfm-xapp.image" -}}
{{- if .Values.gpu.enabled -}}
{{- printf "%s:%s" .Values.gpu.image.repository (default (printf "%s-gpu" .Chart.AppVersion) .Values.gpu.image.tag) -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding the Redis password, or "" when there is none. */}}
{{- define "wmfm-xapp.redisSecret" -}}
{{- if and .Values.redis.existingSecret .Values.redis.password -}}
{{- fail "redis: set existingSecret or password, not both" -}}
{{- else if .Values.redis.existingSecret -}}
{{- .Values.redis.existingSecret -}}
{{- else if .Values.redis.password -}}
{{- include "wmfm-xapp.fullname" . }}-redis
{{- end -}}
{{- end -}}

{{/* "true" / "false": scaling.roundRobin; when it is null, replicaCount > 1 or the pods connect to a
sender (connect.indications: replicas may be added later by `kubectl scale` or an autoscaler). */}}
{{- define "wmfm-xapp.roundRobin" -}}
{{- if kindIs "bool" .Values.scaling.roundRobin -}}
{{- .Values.scaling.roundRobin -}}
{{- else -}}
{{- or (gt (int .Values.replicaCount) 1) (ne .Values.connect.indications "") -}}
{{- end -}}
{{- end -}}

{{/* "true" / "false": service.zmq.headless, or replicaCount > 1 when it is null. */}}
{{- define "wmfm-xapp.zmqHeadless" -}}
{{- if kindIs "bool" .Values.service.zmq.headless -}}
{{- .Values.service.zmq.headless -}}
{{- else -}}
{{- gt (int .Values.replicaCount) 1 -}}
{{- end -}}
{{- end -}}

{{/* A probe of the descriptor (its path without the leading "/" as O-RAN descriptors write it). */}}
{{- define "wmfm-xapp.probe" -}}
httpGet:
  path: /{{ trimPrefix "/" .httpGet.path }}
  port: {{ .httpGet.port }}
{{- range $key, $value := . }}
{{- if ne $key "httpGet" }}
{{ $key }}: {{ $value }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The descriptor's port named "http" (health, config, metrics). */}}
{{- define "wmfm-xapp.httpPort" -}}
{{- $desc := .Files.Get "files/config-file.json" | fromJson -}}
{{- range $desc.messaging.ports -}}
{{- if eq .name "http" }}{{ .port }}{{ end -}}
{{- end -}}
{{- end -}}
