/* yaml.h -- YAML documents to JSON values (libyaml), for flint.yaml. */
#ifndef FL_YAML_H
#define FL_YAML_H

#include <jansson.h>
#include <stddef.h>

/* Converts the first document of text into JSON: mappings become objects
 * (keys must be scalars), sequences arrays; plain scalars that read as integers,
 * reals, true/false or null become those types, quoted scalars stay strings.
 * Anchors and aliases are refused. Returns a new reference, or NULL with one
 * sentence and the line number in err ("line 4: mapping keys must be scalars"). */
json_t *fl_yaml_to_json(const char *text, size_t len, char *err, size_t errlen);

#endif
