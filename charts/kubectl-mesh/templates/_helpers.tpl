{{/* The webhook's DNS names, for its certificate. */}}
{{- define "kubectl-mesh.webhookHosts" -}}
{{- list (printf "mesh-webhook.%s.svc" .Release.Namespace) (printf "mesh-webhook.%s.svc.cluster.local" .Release.Namespace) | toJson -}}
{{- end -}}

{{/* The webhook's namespace selector: never the system's or the release's own namespace. */}}
{{- define "kubectl-mesh.webhookNamespaces" -}}
{{- $ns := concat .Values.webhook.excludedNamespaces (list .Release.Namespace) | uniq -}}
namespaceSelector:
  matchExpressions:
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values: {{ toJson $ns }}
{{- end -}}

{{/* The generated certificate (mode generate), reused from the Secret when it exists. */}}
{{- define "kubectl-mesh.generated" -}}
{{- $secret := lookup "v1" "Secret" .Release.Namespace .Values.webhook.certificate.secretName -}}
{{- if and $secret (index $secret.data "ca.crt") -}}
{{- dict "crt" (index $secret.data "tls.crt") "key" (index $secret.data "tls.key") "ca" (index $secret.data "ca.crt") | toJson -}}
{{- else -}}
{{- $ca := genCA "mesh-webhook-ca" (int .Values.webhook.certificate.validityDays) -}}
{{- $hosts := include "kubectl-mesh.webhookHosts" . | fromJsonArray -}}
{{- $cert := genSignedCert (first $hosts) nil $hosts (int .Values.webhook.certificate.validityDays) $ca -}}
{{- dict "crt" ($cert.Cert | b64enc) "key" ($cert.Key | b64enc) "ca" ($ca.Cert | b64enc) | toJson -}}
{{- end -}}
{{- end -}}

{{/* The rules of a webhook entry, for the operations in .ops. */}}
{{- define "kubectl-mesh.webhookRules" }}
  rules:
  - apiGroups: ["gateway.networking.k8s.io"]
    apiVersions: ["*"]
    operations: {{ toJson .ops }}
    resources: ["gateways", "httproutes", "grpcroutes", "tlsroutes", "tcproutes", "udproutes", "listenersets", "backendtlspolicies", "referencegrants"]
    scope: "Namespaced"
  - apiGroups: ["gateway.networking.k8s.io"]
    apiVersions: ["*"]
    operations: {{ toJson .ops }}
    resources: ["gatewayclasses"]
    scope: "Cluster"
  - apiGroups: ["cilium.io"]
    apiVersions: ["v2"]
    operations: {{ toJson .ops }}
    resources: ["ciliumenvoyconfigs"]
    scope: "Namespaced"
  - apiGroups: ["cilium.io"]
    apiVersions: ["v2"]
    operations: {{ toJson .ops }}
    resources: ["ciliumclusterwideenvoyconfigs"]
    scope: "Cluster"
{{- end }}
{{/* Where and how the API server calls the webhook. */}}
{{- define "kubectl-mesh.clientConfig" }}
  clientConfig:
    service:
      name: mesh-webhook
      namespace: {{ .ns }}
      path: {{ .path }}
      port: 443
    caBundle: {{ .ca | quote }}
  admissionReviewVersions: ["v1"]
  sideEffects: None
  matchPolicy: Equivalent
  timeoutSeconds: {{ .timeout }}
{{- end }}
