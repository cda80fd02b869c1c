{{/* Names and labels shared by every template. */}}

{{- define "kvha.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: the release name, plus the chart name unless the release name already contains it
("kvha" → kvha, "prod" → prod-kvha). Truncated so that derived names ("-leader") stay below 63.
*/}}
{{- define "kvha.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "kvha.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kvha.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kvha.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kvha.labels" -}}
helm.sh/chart: {{ include "kvha.chart" . }}
{{ include "kvha.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: kvha
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "kvha.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kvha.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The leader Lease; the Role grants get/update on this one name only. */}}
{{- define "kvha.leaseName" -}}
{{- printf "%s-leader" (include "kvha.fullname" .) }}
{{- end }}

{{- define "kvha.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}
