{{/* Integer values are rendered through int64: numbers from a values file reach the templates
as float64, which Go prints as 1e+06 from a million on (refused by Kubernetes and by int()). */}}

{{/* Chart name, truncated to the 63 characters Kubernetes allows in names. */}}
{{- define "certs.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Fully qualified app name: release-chart unless the release name already contains it. */}}
{{- define "certs.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The name of one component's objects, e.g. (list . "api"): the full name and a suffix within
the 63 characters of a DNS label (Service names, and Job names, which become label values). The
full name is shortened, never the suffix, so the components keep distinct names. */}}
{{- define "certs.componentName" -}}
{{- $suffix := index . 1 -}}
{{- $base := include "certs.fullname" (index . 0) | trunc (int (sub 62 (len $suffix))) | trimSuffix "-" -}}
{{- printf "%s-%s" $base $suffix -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "certs.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "certs.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels (stable across upgrades); callers add app.kubernetes.io/component. */}}
{{- define "certs.selectorLabels" -}}
app.kubernetes.io/name: {{ include "certs.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The image reference. */}}
{{- define "certs.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The service account name. */}}
{{- define "certs.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "certs.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding credentials: an existing one, or the one this chart creates. */}}
{{- define "certs.secretName" -}}
{{- if .Values.secrets.existingSecret -}}
{{- .Values.secrets.existingSecret -}}
{{- else -}}
{{- include "certs.fullname" . -}}
{{- end -}}
{{- end -}}

{{/* Secret environment of the API, worker and scheduler (never the owner role's URL). */}}
{{- define "certs.secretEnv" -}}
{{- $secret := include "certs.secretName" . -}}
{{- range $key := list "DATABASE_URL" "REDIS_URL" "JWT_SECRET_KEY" "JWT_PRIVATE_KEY" "DB_PLATFORM_KEYS" "WEBHOOK_SECRET_KEYS" "SMTP_USERNAME" "SMTP_PASSWORD" }}
- name: {{ $key }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $key }}
      optional: true
{{- end }}
{{- end -}}

{{/* Pod-level settings shared by every workload. */}}
{{- define "certs.podSpecCommon" -}}
automountServiceAccountToken: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end -}}

{{/* Writable scratch space on a read-only root filesystem: /tmp and the Prometheus files. */}}
{{- define "certs.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
- name: prometheus
  emptyDir:
    medium: Memory
    sizeLimit: {{ .Values.metrics.multiprocDirSizeLimit }}
{{- end -}}

{{- define "certs.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: prometheus
  mountPath: {{ .Values.metrics.multiprocDir }}
{{- end -}}

{{/* Roll pods when configuration or the chart-managed Secret changes. */}}
{{- define "certs.configChecksums" -}}
checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/secret: {{ include (print $.Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end -}}
