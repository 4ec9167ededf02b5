{{/*
Expand the name of the chart.
*/}}
{{- define "triagebot.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Create a default fully qualified app name.
We truncate at 63 chars because some Kubernetes name fields are limited to this (by the DNS naming spec).
If release name contains chart name it will be used as a full name.
*/}}
{{- define "triagebot.fullname" -}}
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

{{/*
Create chart name and version as used by the chart label.
*/}}
{{- define "triagebot.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels
*/}}
{{- define "triagebot.labels" -}}
helm.sh/chart: {{ include "triagebot.chart" . }}
{{ include "triagebot.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Selector labels
*/}}
{{- define "triagebot.selectorLabels" -}}
app.kubernetes.io/name: {{ include "triagebot.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Create the name of the service account to use
*/}}
{{- define "triagebot.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "triagebot.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image reference: repository:tag, the tag defaulting to the chart's appVersion.
*/}}
{{- define "triagebot.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
"true" when every pod gets its own /data claim: the pods then run as a StatefulSet whose
volumeClaimTemplates make one claim per pod (data-<fullname>-<ordinal>), kept across restarts
and rolling updates. Empty: a Deployment with one claim for the release (or
persistence.existingClaim, or an emptyDir). See persistence.perPod in values.yaml.
A value missing from the release (helm upgrade --reuse-values from chart 0.1.x) counts as "auto".
*/}}
{{- define "triagebot.perPodData" -}}
{{- $mode := "auto" }}
{{- if not (kindIs "invalid" .Values.persistence.perPod) }}
{{- $mode = toString .Values.persistence.perPod }}
{{- end }}
{{- if and .Values.persistence.enabled (not .Values.persistence.existingClaim) }}
{{- if or (eq $mode "true") (and (eq $mode "auto") (gt (int .Values.replicaCount) 1)) }}true{{ end }}
{{- end }}
{{- end }}

{{/*
statefulSet values, with defaults when the release has none (helm upgrade --reuse-values from
chart 0.1.x reuses the old chart's values, which had no statefulSet section).
*/}}
{{- define "triagebot.statefulSet" -}}
{{- $defaults := dict "podManagementPolicy" "Parallel" "updateStrategy" (dict "type" "RollingUpdate") }}
{{- merge (deepCopy (.Values.statefulSet | default dict)) $defaults | toYaml }}
{{- end }}

{{/*
Name of the headless Service that governs the StatefulSet (spec.serviceName).
*/}}
{{- define "triagebot.headlessServiceName" -}}
{{- printf "%s-headless" (include "triagebot.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Name of the claim mounted at /data.
*/}}
{{- define "triagebot.dataClaimName" -}}
{{- default (printf "%s-data" (include "triagebot.fullname" .)) .Values.persistence.existingClaim }}
{{- end }}

{{/*
Name of the claim mounted at /data/models (models.shared).
*/}}
{{- define "triagebot.modelsClaimName" -}}
{{- default (printf "%s-models" (include "triagebot.fullname" .)) .Values.models.shared.existingClaim }}
{{- end }}

{{/*
storageClassName line for a claim: empty = cluster default (omitted), "-" = no class.
Call with a dict: (dict "storageClass" .Values.persistence.storageClass)
*/}}
{{- define "triagebot.storageClass" -}}
{{- if .storageClass }}
{{- if eq "-" .storageClass }}
storageClassName: ""
{{- else }}
storageClassName: {{ .storageClass | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Render one env value: strings as they are, maps/lists/numbers/booleans as JSON.
*/}}
{{- define "triagebot.envValue" -}}
{{- if kindIs "string" . }}
{{- . | quote }}
{{- else }}
{{- toJson . | quote }}
{{- end }}
{{- end }}

{{/*
The environment variable each field of secrets.keys sets (the variable names are fixed: they are
what bot/config.py reads; only the key inside the Secret is configurable). YAML, for fromYaml.
*/}}
{{- define "triagebot.secretEnvVars" -}}
slackBotToken: SLACK_BOT_TOKEN
slackSigningSecret: SLACK_SIGNING_SECRET
slackAppToken: SLACK_APP_TOKEN
databaseUrl: TRIAGEBOT_DATABASE_URL
webhookTokens: TRIAGEBOT_WEBHOOK_TOKENS
webhookHmacSecrets: TRIAGEBOT_WEBHOOK_HMAC_SECRETS
{{- end }}

{{/*
Refuse configurations that cannot work.
*/}}
{{- define "triagebot.validate" -}}
{{- $secretVars := include "triagebot.secretEnvVars" . | fromYaml }}
{{- if and (gt (int .Values.replicaCount) 1) (not (and .Values.secrets.existingSecret .Values.secrets.keys.databaseUrl)) }}
{{- fail "replicaCount > 1 needs PostgreSQL: set secrets.existingSecret to a Secret holding TRIAGEBOT_DATABASE_URL (and keep secrets.keys.databaseUrl set); SQLite cannot be shared by several pods" }}
{{- end }}
{{- $perPodMode := "auto" }}
{{- if not (kindIs "invalid" .Values.persistence.perPod) }}
{{- $perPodMode = toString .Values.persistence.perPod }}
{{- end }}
{{- if not (has $perPodMode (list "auto" "true" "false")) }}
{{- fail (printf "persistence.perPod is %q; expected auto, true or false" $perPodMode) }}
{{- end }}
{{- if and (eq $perPodMode "true") (not .Values.persistence.enabled) }}
{{- fail "persistence.perPod=true needs persistence.enabled=true (a claim per pod); without persistence /data is an emptyDir" }}
{{- end }}
{{- if and (eq $perPodMode "true") .Values.persistence.existingClaim }}
{{- fail "persistence.perPod=true makes a claim per pod; it cannot be combined with persistence.existingClaim (one claim shared by every pod)" }}
{{- end }}
{{- if include "triagebot.perPodData" . }}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.models.shared.enabled) }}
{{- fail "replicaCount > 1 with persistence gives each pod its own /data claim (StatefulSet), so a model trained on one pod would be missing on the others (the database only records the artifact's path): set models.shared.enabled=true (a ReadWriteMany claim at /data/models), or keep one claim for all pods with persistence.perPod=false or persistence.existingClaim" }}
{{- end }}
{{- if gt (len (include "triagebot.fullname" .)) 52 }}
{{- fail (printf "the StatefulSet name %q is longer than 52 characters: its pods' controller-revision-hash label would exceed 63; shorten the release name or set fullnameOverride" (include "triagebot.fullname" .)) }}
{{- end }}
{{- end }}
{{- range $field, $_ := .Values.secrets.keys }}
{{- if not (hasKey $secretVars $field) }}
{{- fail (printf "secrets.keys.%s is unknown; known fields: %s" $field (keys $secretVars | sortAlpha | join ", ")) }}
{{- end }}
{{- end }}
{{- range $key := list "TRIAGEBOT_HOST" "TRIAGEBOT_PORT" "TRIAGEBOT_DATA_DIR" }}
{{- if hasKey $.Values.env $key }}
{{- fail (printf "env.%s is set by the chart; remove it from env (use containerPort for the port)" $key) }}
{{- end }}
{{- end }}
{{- range $key, $_ := $.Values.env }}
{{- if has $key (values $secretVars) }}
{{- fail (printf "env.%s is a secret: put it in the Secret named by secrets.existingSecret" $key) }}
{{- end }}
{{- end }}
{{- end }}
