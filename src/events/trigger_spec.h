/* trigger_spec.h -- validation of a spec's `triggers: [...]` (docs/spec.md). */
#ifndef FL_TRIGGER_SPEC_H
#define FL_TRIGGER_SPEC_H

#include <jansson.h>
#include <stddef.h>

/* Validates the triggers array v: each item is exactly one of {cron: ...},
 * {redis: {...}} or {nats: {...}} with its fields. Returns 0 and *out (a new
 * array with defaults written out; the caller owns it), or -EINVAL with one
 * sentence naming the field ("triggers[1].cron: ...") in err. */
int fl_trigger_spec_parse(const json_t *v, json_t **out, char *err, size_t errlen);

#endif
