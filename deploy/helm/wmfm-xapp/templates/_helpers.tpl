{{/*
Names and labels as the O-RAN SC standard xApp chart (xapp-std, what the onboarder generates) makes
them, so that appmgr and the platform find the xApp by the names they compute themselves:
  name       the descriptor's `name` (or nameOverride)                   wmfm-xapp
  fullname   <namespace>-<name>: the Deployment, label `app`             ricxapp-wmfm-xapp
  ConfigMaps configmap-<fullname>-appconfig, -appenv, -grafana
  Services   service-<fullname>-<port> for each non-RMR descriptor port of a container in the pod,
             service-<fullname>-rmr for the RMR ports (with the E2 bridge)
The release name is in no object name: a second instance in one namespace needs its own nameOverride.
*/}}

{{/* The parsed descriptor (files/config-file.json, a link to deploy/descriptor/config-file.json). */}}
{{- define "wmfm-xapp.descriptor" -}}
{{- .Files.Get "files/config-file.json" -}}
{{- end -}}

{{- define "wmfm-xapp.name" -}}
{{- $desc := include "wmfm-xapp.descriptor" . | fromJson -}}
{{- default $desc.name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "wmfm-xapp.fullname" -}}
{{- printf "%s-%s" .Release.Namespace (include "wmfm-xapp.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <chart name>-<chart version>, "+" (build metadata) made label-safe. */}}
{{- define "wmfm-xapp.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* configmap-<fullname>: the ConfigMaps append -appconfig, -appenv, -grafana (appmgr reads
configmap-<namespace>-<name>-appconfig). */}}
{{- define "wmfm-xapp.configmap" -}}
{{- printf "configmap-%s" (include "wmfm-xapp.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* service-<fullname>-<port>, from (list $ "<port name>"). The platform computes these names
without truncating them, so a name over the 63 characters of a DNS label fails here instead of
being cut (and two cut names colliding). */}}
{{- define "wmfm-xapp.service" -}}
{{- $top := index . 0 -}}
{{- $svc := printf "service-%s-%s" (include "wmfm-xapp.fullname" $top) (index . 1) -}}
{{- if gt (len $svc) 63 -}}
{{- fail (printf "the Service name %s is longer than 63 characters: shorten the namespace or nameOverride" $svc) -}}
{{- end -}}
{{- $svc -}}
{{- end -}}

{{- define "wmfm-xapp.selectorLabels" -}}
app: {{ include "wmfm-xapp.fullname" . }}
release: {{ .Release.Name }}
{{- end -}}

{{/* The pod's labels: xapp-std's app, kubernetes_name (<namespace>_<name>) and release. */}}
{{- define "wmfm-xapp.podLabels" -}}
{{ include "wmfm-xapp.selectorLabels" . }}
kubernetes_name: {{ printf "%s_%s" .Release.Namespace (include "wmfm-xapp.name" .) | trunc 63 | trimSuffix "-" | trimSuffix "_" }}
app.kubernetes.io/name: {{ include "wmfm-xapp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "wmfm-xapp.labels" -}}
{{ include "wmfm-xapp.selectorLabels" . }}
chart: {{ include "wmfm-xapp.chart" . }}
heritage: {{ .Release.Service }}
app.kubernetes.io/name: {{ include "wmfm-xapp.name" . }}
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

{{/* The E2 bridge's image (deploy/docker/Dockerfile.bridge). */}}
{{- define "wmfm-xapp.bridgeImage" -}}
{{- printf "%s:%s" .Values.bridge.image.repository (default .Chart.AppVersion .Values.bridge.image.tag) -}}
{{- end -}}

{{/* The descriptor's container that serves the port named (list $ "<port name>"): the xApp's is the one of
"http", the E2 bridge's the one of "rmrdata". */}}
{{- define "wmfm-xapp.containerOf" -}}
{{- $desc := include "wmfm-xapp.descriptor" (index . 0) | fromJson -}}
{{- $name := index . 1 -}}
{{- range $desc.messaging.ports -}}
{{- if eq .name $name }}{{ .container }}{{ end -}}
{{- end -}}
{{- end -}}

{{/* Where a descriptor port (list $ <port>) is served in this chart's pod: "xapp", "bridge", or "" (nowhere:
a port of the bridge without it; the xApp's "indications" with it, which then come over ipc://). */}}
{{- define "wmfm-xapp.portIn" -}}
{{- $top := index . 0 -}}
{{- $port := index . 1 -}}
{{- if eq $port.container (include "wmfm-xapp.containerOf" (list $top "http")) -}}
{{- if not (and $top.Values.bridge.enabled (eq $port.name "indications")) }}xapp{{ end -}}
{{- else if and $top.Values.bridge.enabled (eq $port.container (include "wmfm-xapp.containerOf" (list $top "rmrdata"))) -}}
bridge
{{- end -}}
{{- end -}}

{{/* The ZeroMQ socket between the E2 bridge and the xApp: a Unix socket on the pod's shared emptyDir. */}}
{{- define "wmfm-xapp.bridgeSocket" -}}
ipc:///var/run/wmfm/indications.sock
{{- end -}}

{{/* The Secret holding the Redis password, or "" when there is none. */}}
{{- define "wmfm-xapp.redisSecret" -}}
{{- if and .Values.redis.existingSecret .Values.redis.password -}}
{{- fail "redis: set existingSecret or password, not both" -}}
{{- else if .Values.redis.existingSecret -}}
{{- .Values.redis.existingSecret -}}
{{- else if .Values.redis.password -}}
{{- printf "secret-%s-redis" (include "wmfm-xapp.fullname" .) -}}
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
{{- $desc := include "wmfm-xapp.descriptor" . | fromJson -}}
{{- range $desc.messaging.ports -}}
{{- if eq .name "http" }}{{ .port }}{{ end -}}
{{- end -}}
{{- end -}}

{{/* The Prometheus scrape annotations (read from Services by the RIC's Prometheus, and from pods). */}}
{{- define "wmfm-xapp.prometheusAnnotations" -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ include "wmfm-xapp.httpPort" . | quote }}
prometheus.io/path: /ric/v1/metrics
{{- end -}}
