{{/* The chart name. */}}
{{- define "wao.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: the prefix of every object (and the VWC, the Lease). */}}
{{- define "wao.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "wao.selectorLabels" -}}
app.kubernetes.io/name: {{ include "wao.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "wao.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "wao.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "wao.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "wao.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The one watched namespace, or "" (every namespace). Fails on more than one. */}}
{{- define "wao.watchNamespace" -}}
{{- $n := .Values.watchNamespaces | default list }}
{{- if gt (len $n) 1 }}
{{- fail (printf "watchNamespaces lists %d namespaces: the operator watches one namespace (--namespace) or all of them; list at most one, and install one release per namespace for several (see the chart's README)" (len $n)) }}
{{- end }}
{{- if eq (len $n) 1 }}{{ first $n }}{{ end }}
{{- end }}

{{/* "true" when the replicas elect a leader: configured, or more than one replica. */}}
{{- define "wao.leaderElect" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicas) 1) }}true{{ end }}
{{- end }}

{{/* The leader-election Lease's name (in the release namespace). */}}
{{- define "wao.leaseName" -}}
{{- include "wao.fullname" . }}
{{- end }}

{{/* The pod's grace period: above the pass timeout, so SIGTERM lets running passes end. */}}
{{- define "wao.gracePeriod" -}}
{{- $pass := int .Values.passTimeoutSeconds }}
{{- if lt $pass 1 }}{{ fail "passTimeoutSeconds must be a positive number of seconds" }}{{ end }}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- add $pass 15 }}
{{- else }}
{{- $grace := int .Values.terminationGracePeriodSeconds }}
{{- if le $grace $pass }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed passTimeoutSeconds (%d): shutdown waits up to the pass timeout for running passes" $grace $pass) }}
{{- end }}
{{- $grace }}
{{- end }}
{{- end }}

{{- define "wao.webhookServiceName" -}}
{{- printf "%s-webhook" (include "wao.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The Secret holding the webhook's serving certificate (tls.crt, tls.key). */}}
{{- define "wao.webhookSecretName" -}}
{{- if eq .Values.webhook.certificate.source "existing" }}
{{- required "webhook.certificate.existing.secretName is required with source existing" .Values.webhook.certificate.existing.secretName }}
{{- else }}
{{- printf "%s-webhook-tls" (include "wao.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* The DNS names the API server uses for the webhook Service. */}}
{{- define "wao.webhookDNSNames" -}}
{{- $svc := include "wao.webhookServiceName" . }}
{{- $ns := .Release.Namespace }}
{{- list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) | toJson }}
{{- end }}

{{/*
RBAC rules, derived from what the operator calls (src/); tests/chart.rs removes each (resource,
verb) in turn and shows which step then fails.
*/}}

{{/* Rules for the watched namespace(s): a Role there, or part of the ClusterRole. */}}
{{- define "wao.rules.watched" -}}
# Watches of channels (list, watch); the cleanup finalizer added and removed by JSON patch.
- apiGroups: ["whatsapp-operator.io"]
  resources: ["whatsappchannels"]
  verbs: ["list", "watch", "patch"]
# Status by server-side apply.
- apiGroups: ["whatsapp-operator.io"]
  resources: ["whatsappchannels/status"]
  verbs: ["patch"]
# Metadata-only watch of Secrets (list, watch); the data of the one Secret a pass needs (get);
# the credentials-in-use finalizer (patch).
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "patch"]
# Events (events.k8s.io/v1): a new one is created, a repeated one patched (its series count).
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/* Rules that are cluster-wide whatever is watched. */}}
{{- define "wao.rules.cluster" -}}
# Bindings are cluster-scoped: watched (list, watch), claimed (create), released or cleared when
# stale (delete, with preconditions), pointed at a new instance (patch).
- apiGroups: ["whatsapp-operator.io"]
  resources: ["whatsappnumberbindings"]
  verbs: ["list", "watch", "create", "patch", "delete"]
# A binding's holder may live in any namespace: it is read (get) before a binding is called stale,
# and by the admission webhook when its cache lacks the holder.
- apiGroups: ["whatsapp-operator.io"]
  resources: ["whatsappchannels"]
  verbs: ["get"]
{{- if not .Values.clusterId }}
# The default --cluster-id: the kube-system namespace's UID, read once at start.
- apiGroups: [""]
  resources: ["namespaces"]
  resourceNames: ["kube-system"]
  verbs: ["get"]
{{- end }}
{{- end }}
