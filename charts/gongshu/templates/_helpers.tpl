{{/* Labels every object carries. */}}
{{- define "gongshu.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/part-of: gongshu
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The operator's pods: the Deployment's selector, the Services' and the PDB's. */}}
{{- define "gongshu.operatorSelector" -}}
app.kubernetes.io/name: gongshu-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "gongshu.operatorLabels" -}}
{{ include "gongshu.labels" . }}
app.kubernetes.io/name: gongshu-operator
app.kubernetes.io/component: operator
{{- end }}

{{/* repository[:tag][@digest] of an image map, the chart's appVersion as the default tag. */}}
{{- define "gongshu.imageRef" -}}
{{- $image := index . 0 -}}
{{- $root := index . 1 -}}
{{- if $image.digest -}}
{{ $image.repository }}@{{ $image.digest }}
{{- else -}}
{{ $image.repository }}:{{ $image.tag | default $root.Chart.AppVersion }}
{{- end -}}
{{- end }}

{{- define "gongshu.image" -}}
{{ include "gongshu.imageRef" (list .Values.image .) }}
{{- end }}

{{/* The exchange's image: its own fields where set, the operator's otherwise. */}}
{{- define "gongshu.exchangeImage" -}}
{{- $own := .Values.exchange.image -}}
{{- $digest := $own.digest -}}
{{- if and (not $digest) (not $own.repository) -}}
{{- $digest = .Values.image.digest -}}
{{- end -}}
{{- $image := dict "repository" ($own.repository | default .Values.image.repository) "tag" ($own.tag | default .Values.image.tag) "digest" $digest -}}
{{ include "gongshu.imageRef" (list $image .) }}
{{- end }}

{{/* The backup runner Jobs' image: its own fields where set, the operator's otherwise. */}}
{{- define "gongshu.backupImage" -}}
{{- $own := .Values.backups.image -}}
{{- $digest := $own.digest -}}
{{- if and (not $digest) (not $own.repository) -}}
{{- $digest = .Values.image.digest -}}
{{- end -}}
{{- $image := dict "repository" ($own.repository | default .Values.image.repository) "tag" ($own.tag | default .Values.image.tag) "digest" $digest -}}
{{ include "gongshu.imageRef" (list $image .) }}
{{- end }}

{{/* The webhook Service's in-cluster DNS name. */}}
{{- define "gongshu.webhookHost" -}}
gongshu-webhook.{{ .Release.Namespace }}.svc
{{- end }}

{{- define "gongshu.exchangeUrl" -}}
{{ .Values.exchange.url | default (printf "https://gongshu-exchange.%s.svc" .Release.Namespace) }}
{{- end }}

{{/* Whether the chart makes its own self-signed CA for cert-manager. */}}
{{- define "gongshu.selfSignedCa" -}}
{{- if or (and .Values.webhook.certManager.enabled (empty .Values.webhook.certManager.issuerRef)) (and .Values.exchange.enabled .Values.exchange.certManager.enabled (empty .Values.exchange.certManager.issuerRef)) -}}
true
{{- end -}}
{{- end }}

{{/* The issuerRef of a certManager block, the chart's CA by default. */}}
{{- define "gongshu.issuerRef" -}}
{{- if empty . -}}
name: gongshu-ca
kind: Issuer
group: cert-manager.io
{{- else -}}
{{ toYaml . }}
{{- end -}}
{{- end }}
