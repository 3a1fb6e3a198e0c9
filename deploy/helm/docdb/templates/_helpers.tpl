{{- define "docdb.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "docdb.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The labels a component's pods are selected by: (dict "root" $ "component" "web"). */}}
{{- define "docdb.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "docdb.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "docdb.secretName" -}}
{{ .Values.secret.existingSecret | default (printf "%s-secret" (include "docdb.fullname" .)) }}
{{- end -}}

{{- define "docdb.weaviateUrl" -}}
{{- if .Values.weaviate.url -}}
{{ .Values.weaviate.url }}
{{- else -}}
http://{{ include "docdb.fullname" . }}-weaviate:{{ .Values.weaviate.service.httpPort }}
{{- end -}}
{{- end -}}

{{/* Every DocDB process reads its settings from the ConfigMap and the Secret. */}}
{{- define "docdb.envFrom" -}}
envFrom:
  - configMapRef:
      name: {{ include "docdb.fullname" . }}-config
  - secretRef:
      name: {{ include "docdb.secretName" . }}
{{- end -}}

{{/* /data: a task's temporary folder with S3; else the volume web and workers share. */}}
{{- define "docdb.dataVolume" -}}
- name: data
{{- if .Values.storage.s3.enabled }}
  emptyDir: {}
{{- else }}
  persistentVolumeClaim:
    claimName: {{ include "docdb.fullname" . }}-data
{{- end }}
{{- end -}}

{{/* Pods start once the setup Job has migrated the database (an upgrade's new code never runs
on the old schema). */}}
{{- define "docdb.waitForMigrations" -}}
- name: wait-for-migrations
  image: {{ include "docdb.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command: ["sh", "-c", "until python manage.py migrate --check >/dev/null; do sleep 5; done"]
  {{- include "docdb.envFrom" . | nindent 2 }}
{{- end -}}

{{- define "docdb.podSecurityContext" -}}
# The image's user; fsGroup makes the volumes writable to it.
securityContext:
  runAsNonRoot: true
  runAsUser: 1000
  runAsGroup: 1000
  fsGroup: 1000
{{- end -}}

{{- define "docdb.scheduling" -}}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
