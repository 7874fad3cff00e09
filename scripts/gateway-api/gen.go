// Command gen writes the Gateway API CRDs of one release, both channels, as the compact JSON
// mesh-model embeds: per channel, per kind, its group, plural, scope and served versions with
// their OpenAPI schemas. Descriptions are dropped (the model does not show them); everything
// the API server validates with (types, formats, limits, defaults, list types, CEL rules) stays.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

type version struct {
	Name    string                                   `json:"name"`
	Storage bool                                     `json:"storage"`
	Schema  *apiextensionsv1.JSONSchemaProps         `json:"schema"`
}

type kind struct {
	Kind       string    `json:"kind"`
	Group      string    `json:"group"`
	Plural     string    `json:"plural"`
	Namespaced bool      `json:"namespaced"`
	Versions   []version `json:"versions"`
}

func strip(s *apiextensionsv1.JSONSchemaProps) {
	if s == nil {
		return
	}
	s.Description = ""
	for k, p := range s.Properties {
		strip(&p)
		s.Properties[k] = p
	}
	if s.Items != nil {
		strip(s.Items.Schema)
		for i := range s.Items.JSONSchemas {
			strip(&s.Items.JSONSchemas[i])
		}
	}
	if s.AdditionalProperties != nil {
		strip(s.AdditionalProperties.Schema)
	}
	for _, list := range [][]apiextensionsv1.JSONSchemaProps{s.AllOf, s.AnyOf, s.OneOf} {
		for i := range list {
			strip(&list[i])
		}
	}
	if s.Not != nil {
		strip(s.Not)
	}
}

func main() {
	root, release := os.Args[1], os.Args[2]
	out := map[string]any{"release": release}
	channels := map[string][]kind{}
	for _, channel := range []string{"standard", "experimental"} {
		files, err := filepath.Glob(filepath.Join(root, "config", "crd", channel, "gateway.networking.*.yaml"))
		if err != nil {
			panic(err)
		}
		sort.Strings(files)
		for _, f := range files {
			if strings.Contains(f, "_vap_") {
				continue
			}
			text, err := os.ReadFile(f)
			if err != nil {
				panic(err)
			}
			var crd apiextensionsv1.CustomResourceDefinition
			if err := yaml.UnmarshalStrict(text, &crd); err != nil {
				panic(fmt.Sprintf("%s: %v", f, err))
			}
			k := kind{
				Kind:       crd.Spec.Names.Kind,
				Group:      crd.Spec.Group,
				Plural:     crd.Spec.Names.Plural,
				Namespaced: crd.Spec.Scope == apiextensionsv1.NamespaceScoped,
			}
			for _, v := range crd.Spec.Versions {
				if !v.Served {
					continue
				}
				strip(v.Schema.OpenAPIV3Schema)
				k.Versions = append(k.Versions, version{Name: v.Name, Storage: v.Storage, Schema: v.Schema.OpenAPIV3Schema})
			}
			channels[channel] = append(channels[channel], k)
		}
	}
	out["channels"] = channels
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		panic(err)
	}
}
