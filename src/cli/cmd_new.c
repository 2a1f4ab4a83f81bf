/* cmd_new.c -- the verbs that need no daemon: `new` (a function from a language
 * template), `templates` (the languages there are) and `completion` (a shell script). */
#include "cli/client.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/util.h"

#define PLACEHOLDER	 "{{NAME}}"
#define DESCRIPTION_FILE "DESCRIPTION" /* a template's one-line summary; not copied */
#define MAX_LANGS	 64

/* Finds the templates directory (fl_templates_dir), or prints why none was found. */
static int templates_dir(char *out, size_t n)
{
	char why[PATH_MAX + 200];

	if (fl_templates_dir(out, n, why, sizeof(why)) == 0)
		return 0;
	fl_cli__err("%s", why);
	return -1;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Fills langs with the sorted names of the template directories under dir (each
 * a new string the caller frees). Returns their number, or -1 after printing why. */
static int list_langs(const char *dir, char **langs, int max)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;
	char path[PATH_MAX];

	if (d == NULL) {
		fl_cli__err("cannot read the templates directory %s: %s", dir, strerror(errno));
		return -1;
	}
	while ((e = readdir(d)) != NULL && n < max) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (fl_is_dir(path))
			langs[n++] = fl_xstrdup(e->d_name);
	}
	closedir(d);
	qsort(langs, (size_t)n, sizeof(*langs), cmp_str);
	return n;
}

static void free_langs(char **langs, int n)
{
	for (int i = 0; i < n; i++)
		free(langs[i]);
}

/* Writes "c, node, python, sh" into out. */
static void join_langs(char **langs, int n, char *out, size_t len)
{
	size_t o = 0;
	out[0] = '\0';
	for (int i = 0; i < n && o < len; i++)
		o += (size_t)snprintf(out + o, len - o, "%s%s", i ? ", " : "", langs[i]);
}

/* The first line of the template's DESCRIPTION file, in out ("" without one). */
static void description(const char *dir, const char *lang, char *out, size_t n)
{
	char path[PATH_MAX];
	char *text;

	snprintf(path, sizeof(path), "%s/%s/%s", dir, lang, DESCRIPTION_FILE);
	out[0] = '\0';
	text = fl_read_file(path, NULL);
	if (text == NULL)
		return;
	snprintf(out, n, "%.*s", (int)strcspn(text, "\r\n"), text);
	free(text);
}

/* ---- flint templates ---- */

static const char templates_help[] =
    "usage: flint templates\n\n"
    "Lists the languages `flint new NAME -l LANG` can start a function in. The templates\n"
    "are read from $FLINT_TEMPLATES, else bin/../templates next to the flint binary, "
    "else\n" FL_SYSTEM_TEMPLATES ".\n";

int fl_cli__templates(fl_cli__ctx *c, int argc, char **argv)
{
	static const fl_cli__opt none[] = {{NULL, 0, 0, 0}};
	char dir[PATH_MAX], desc[256], *langs[MAX_LANGS];
	fl_cli__args a;
	const char *val;
	int id, n;

	fl_cli__args_init(&a, c, argc, argv, none);
	while ((id = fl_cli__next_opt(&a, &val)) != FL_CLI_ARG_END) {
		if (id == FL_CLI_ARG_ERR)
			return FL_CLI_USAGE;
		if (id == FL_CLI_ARG_HELP) {
			fputs(templates_help, stdout);
			return FL_CLI_OK;
		}
		return fl_cli__usage_err(c, "unexpected argument \"%s\"", val);
	}
	if (templates_dir(dir, sizeof(dir)) < 0)
		return FL_CLI_FAIL;
	n = list_langs(dir, langs, MAX_LANGS);
	if (n < 0)
		return FL_CLI_FAIL;
	if (n == 0) {
		fl_cli__err("the templates directory %s holds no templates", dir);
		return FL_CLI_FAIL;
	}
	printf("%-10s %s\n", "LANGUAGE", "DESCRIPTION");
	for (int i = 0; i < n; i++) {
		description(dir, langs[i], desc, sizeof(desc));
		printf("%-10s %s\n", langs[i], desc);
	}
	printf("\nStart one with: flint new NAME -l LANGUAGE (templates in %s)\n", dir);
	free_langs(langs, n);
	return FL_CLI_OK;
}

/* ---- flint new ---- */

static const char new_help[] =
    "usage: flint new NAME -l LANGUAGE [--dir PARENT]\n\n"
    "Creates the directory PARENT/NAME (default ./NAME) holding a handler function in\n"
    "LANGUAGE, its flint.yaml, a README.md and a .flintignore, ready for\n"
    "`flint deploy ./NAME`. `flint templates` lists the languages.\n\n"
    "  -l, --lang LANGUAGE  python, node, c, sh, ... (see flint templates)\n"
    "  --dir PARENT         where to create NAME/ (default: the current directory)\n";

/* Replaces every PLACEHOLDER in text[0..len) by name, into out. Returns 0 or -ENOMEM. */
static int substitute(const char *text, size_t len, const char *name, fl_buf *out)
{
	const char *p = text, *end = text + len, *hit;
	size_t pl = strlen(PLACEHOLDER);

	while ((hit = memmem(p, (size_t)(end - p), PLACEHOLDER, pl)) != NULL) {
		if (fl_buf_append(out, p, (size_t)(hit - p)) < 0 || fl_buf_puts(out, name) < 0)
			return -ENOMEM;
		p = hit + pl;
	}
	return fl_buf_append(out, p, (size_t)(end - p));
}

/* Copies one template file to dst with the function's name filled in, keeping its
 * permission bits (so scripts stay executable). Returns 0, or -1 after printing why. */
static int copy_file(const char *src, const char *dst, mode_t mode, const char *name)
{
	fl_buf out = FL_BUF_INIT;
	size_t len;
	char *text = fl_read_file(src, &len);
	int fd = -1, rc = -1;

	if (text == NULL) {
		fl_cli__err("cannot read the template file %s: %s", src, strerror(errno));
		goto fail;
	}
	if (substitute(text, len, name, &out) < 0) {
		fl_cli__err("out of memory copying %s", src);
		goto fail;
	}
	fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, (mode & 0777) | 0600);
	if (fd < 0) {
		fl_cli__err("cannot create %s: %s", dst, strerror(errno));
		goto fail;
	}
	int r = fl_write_all(fd, out.p ? out.p : "", out.len);
	if (r < 0) {
		fl_cli__err("cannot write %s: %s", dst, strerror(-r));
		goto fail;
	}
	if (close(fd) < 0) {
		fd = -1;
		fl_cli__err("cannot write %s: %s", dst, strerror(errno));
		goto fail;
	}
	fd = -1;
	rc = 0;
fail:
	if (fd >= 0)
		close(fd);
	fl_buf_free(&out);
	free(text);
	return rc;
}

/* Copies the template tree src into the existing directory dst. top: src is the
 * template's root, whose DESCRIPTION file stays behind. Returns 0 or -1 (printed). */
static int copy_tree(const char *src, const char *dst, const char *name, int top)
{
	char from[PATH_MAX], to[PATH_MAX];
	struct dirent *e;
	struct stat st;
	int rc = 0;
	DIR *d = opendir(src);

	if (d == NULL) {
		fl_cli__err("cannot read the template directory %s: %s", src, strerror(errno));
		return -1;
	}
	while (rc == 0 && (e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
		    (top && strcmp(e->d_name, DESCRIPTION_FILE) == 0))
			continue;
		snprintf(from, sizeof(from), "%s/%s", src, e->d_name);
		snprintf(to, sizeof(to), "%s/%s", dst, e->d_name);
		if (lstat(from, &st) < 0) {
			fl_cli__err("cannot read the template file %s: %s", from, strerror(errno));
			rc = -1;
		} else if (S_ISDIR(st.st_mode)) {
			if (mkdir(to, 0755) < 0) {
				fl_cli__err("cannot create %s: %s", to, strerror(errno));
				rc = -1;
			} else {
				rc = copy_tree(from, to, name, 0);
			}
		} else if (S_ISREG(st.st_mode)) {
			rc = copy_file(from, to, st.st_mode, name);
		}
		/* Anything else (a symbolic link, a socket) is not part of a template. */
	}
	closedir(d);
	return rc;
}

static const char *rm_root; /* the directory being emptied by rm_entry, kept itself */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (rm_root && strcmp(path, rm_root) == 0)
		return 0;
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

/* Undoes a half-made copy: removes dir's contents, and dir itself when created. */
static void remove_partial(const char *dir, int created)
{
	rm_root = created ? NULL : dir;
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	rm_root = NULL;
}

/* 1 if dir has no entries, 0 if it has some, -1 (errno set) if unreadable. */
static int dir_empty(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int empty = 1;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
			empty = 0;
			break;
		}
	closedir(d);
	return empty;
}

int fl_cli__new(fl_cli__ctx *c, int argc, char **argv)
{
	static const fl_cli__opt opts[] = {
	    {"lang", 'l', 1, 'l'},
	    {"language", 0, 1, 'l'},
	    {"dir", 0, 1, 'D'},
	    {NULL, 0, 0, 0},
	};
	const char *name = NULL, *lang = NULL, *parent = ".", *val;
	char tdir[PATH_MAX], src[PATH_MAX + 256], target[PATH_MAX], list[512];
	char *langs[MAX_LANGS];
	int nlangs = 0, id, created = 0, rc = FL_CLI_FAIL, found = 0;
	fl_cli__args a;
	struct stat st;

	fl_cli__args_init(&a, c, argc, argv, opts);
	while ((id = fl_cli__next_opt(&a, &val)) != FL_CLI_ARG_END) {
		if (id == FL_CLI_ARG_ERR)
			return FL_CLI_USAGE;
		if (id == FL_CLI_ARG_HELP) {
			fputs(new_help, stdout);
			return FL_CLI_OK;
		}
		if (id == FL_CLI_ARG_POS) {
			if (name)
				return fl_cli__usage_err(c, "unexpected argument \"%s\"", val);
			name = val;
		} else if (id == 'l') {
			lang = val;
		} else if (id == 'D') {
			parent = val;
		}
	}
	if (a.rest)
		return fl_cli__usage_err(c, "takes no command after --");
	if (name == NULL)
		return fl_cli__usage_err(c, "which function? Give its NAME");
	if (!fl_valid_name(name))
		return fl_cli__usage_err(
		    c,
		    "\"%s\" is not a valid function name: use 1 to 63 lowercase "
		    "letters, digits and '-', not starting or ending with '-'",
		    name);
	if (templates_dir(tdir, sizeof(tdir)) < 0)
		return FL_CLI_FAIL;
	nlangs = list_langs(tdir, langs, MAX_LANGS);
	if (nlangs < 0)
		return FL_CLI_FAIL;
	join_langs(langs, nlangs, list, sizeof(list));
	for (int i = 0; i < nlangs; i++)
		found |= lang && strcmp(langs[i], lang) == 0;
	if (lang == NULL) {
		rc = fl_cli__usage_err(c, "which language? Give -l LANGUAGE, one of: %s", list);
		goto fail;
	}
	if (!found) {
		rc = fl_cli__usage_err(c, "no template for the language \"%s\"; choose one of: %s",
				       lang, list);
		goto fail;
	}
	snprintf(src, sizeof(src), "%s/%s", tdir, lang);

	if (snprintf(target, sizeof(target), "%s/%s", parent, name) >= (int)sizeof(target)) {
		fl_cli__err("the path %s/%s is too long", parent, name);
		goto fail;
	}
	if (stat(target, &st) == 0) {
		if (!S_ISDIR(st.st_mode)) {
			fl_cli__err("%s already exists and is not a directory; choose another NAME "
				    "or --dir",
				    target);
			goto fail;
		}
		int empty = dir_empty(target);
		if (empty < 0) {
			fl_cli__err("cannot read %s: %s", target, strerror(errno));
			goto fail;
		}
		if (!empty) {
			fl_cli__err("%s already exists and is not empty; choose another NAME or "
				    "--dir, or remove it first",
				    target);
			goto fail;
		}
	} else {
		int r = fl_mkdirs(parent, 0755);
		if (r < 0) {
			fl_cli__err("cannot create the directory %s: %s", parent, strerror(-r));
			goto fail;
		}
		if (mkdir(target, 0755) < 0) {
			fl_cli__err("cannot create the directory %s: %s", target, strerror(errno));
			goto fail;
		}
		created = 1;
	}
	if (copy_tree(src, target, name, 1) < 0) {
		remove_partial(target, created);
		goto fail;
	}
	printf("created %s from the %s template\n\n", target, lang);
	printf("  deploy it:  flint deploy %s%s\n",
	       target[0] == '/' || target[0] == '.' ? "" : "./", target);
	printf("  call it:    flint invoke %s\n", name);
	printf("  edit it:    see %s/README.md\n", target);
	rc = FL_CLI_OK;
fail:
	free_langs(langs, nlangs);
	return rc;
}

/* ---- flint completion ---- */

/* The verbs and their options, kept in step with the verb table and each verb's
 * options by hand: the script is static text so that it can be saved once. */
static const char bash_completion[] =
    "# bash completion for flint; load it with: source <(flint completion bash)\n"
    "_flint_functions()\n"
    "{\n"
    "\t# One \"name\" member per function in the indented answer of ls -o json.\n"
    "\tflint ls -o json 2>/dev/null | sed -n 's/^ *\"name\": *\"\\([^\"]*\\)\".*/\\1/p'\n"
    "}\n"
    "\n"
    "_flint()\n"
    "{\n"
    "\tlocal cur prev verb opts i\n"
    "\tcur=\"${COMP_WORDS[COMP_CWORD]}\"\n"
    "\tprev=\"${COMP_WORDS[COMP_CWORD-1]}\"\n"
    "\tlocal verbs=\"serve deploy ls describe logs invoke scale rm info requests triggers "
    "new templates completion\"\n"
    "\tverb=\"\"\n"
    "\tfor ((i = 1; i < COMP_CWORD; i++)); do\n"
    "\t\tcase \"${COMP_WORDS[i]}\" in\n"
    "\t\t--admin|--data) i=$((i + 1)) ;;\n"
    "\t\t-*) ;;\n"
    "\t\t*) verb=\"${COMP_WORDS[i]}\"; break ;;\n"
    "\t\tesac\n"
    "\tdone\n"
    "\tcase \"$prev\" in\n"
    "\t--data|--dir|--workdir)\n"
    "\t\tCOMPREPLY=($(compgen -d -- \"$cur\"))\n"
    "\t\treturn ;;\n"
    "\t-l|--lang|--language)\n"
    "\t\tCOMPREPLY=($(compgen -W \"python node c sh\" -- \"$cur\"))\n"
    "\t\treturn ;;\n"
    "\t--protocol)\n"
    "\t\tCOMPREPLY=($(compgen -W \"http http2 grpc\" -- \"$cur\"))\n"
    "\t\treturn ;;\n"
    "\t-o|--output)\n"
    "\t\tCOMPREPLY=($(compgen -W \"json text\" -- \"$cur\"))\n"
    "\t\treturn ;;\n"
    "\t-X|--method)\n"
    "\t\tCOMPREPLY=($(compgen -W \"GET POST PUT PATCH DELETE HEAD OPTIONS\" -- \"$cur\"))\n"
    "\t\treturn ;;\n"
    "\t--fn)\n"
    "\t\tCOMPREPLY=($(compgen -W \"$(_flint_functions)\" -- \"$cur\"))\n"
    "\t\treturn ;;\n"
    "\t--admin|--listen|--gateway|-d|--body|-H|--header|--path|--name|-e|--env|--min|--max|"
    "--concurrency|--target|--idle-timeout|--timeout|--max-body|--health-path|--grpc-service|"
    "-n|--tail|--status|--limit|--threads|--domain|--ports|--log-level)\n"
    "\t\treturn ;;\n"
    "\tesac\n"
    "\tif [ -z \"$verb\" ]; then\n"
    "\t\tCOMPREPLY=($(compgen -W \"$verbs --admin --data --help\" -- \"$cur\"))\n"
    "\t\treturn\n"
    "\tfi\n"
    "\tlocal global=\"--admin --data --help\"\n"
    "\tcase \"$verb\" in\n"
    "\tserve) opts=\"--data --listen --admin --threads --domain --ports --log-level --help\" "
    ";;\n"
    "\tdeploy) opts=\"--name --protocol --env -e --min --max --concurrency --target "
    "--idle-timeout --timeout --max-body --health-path --workdir --grpc-service $global\" ;;\n"
    "\tls|info) opts=\"-o --output $global\" ;;\n"
    "\tdescribe) opts=\"-o --output $global\" ;;\n"
    "\tlogs) opts=\"-f --follow -n --tail $global\" ;;\n"
    "\tinvoke) opts=\"-d --body -H --header --path -X --method --gateway -v --verbose "
    "$global\" ;;\n"
    "\tscale) opts=\"--min --max $global\" ;;\n"
    "\trm) opts=\"$global\" ;;\n"
    "\trequests) opts=\"--dead --fn --status --limit -o --output retry $global\" ;;\n"
    "\ttriggers) opts=\"ls -o --output $global\" ;;\n"
    "\tnew) opts=\"-l --lang --dir --help\" ;;\n"
    "\ttemplates) opts=\"--help\" ;;\n"
    "\tcompletion) opts=\"bash\" ;;\n"
    "\t*) opts=\"\" ;;\n"
    "\tesac\n"
    "\tcase \"$verb\" in\n"
    "\tdescribe|logs|invoke|scale|rm)\n"
    "\t\tif [[ \"$cur\" != -* ]]; then\n"
    "\t\t\tCOMPREPLY=($(compgen -W \"$(_flint_functions)\" -- \"$cur\"))\n"
    "\t\t\treturn\n"
    "\t\tfi ;;\n"
    "\tdeploy)\n"
    "\t\tif [[ \"$cur\" != -* ]]; then\n"
    "\t\t\tCOMPREPLY=($(compgen -d -- \"$cur\"))\n"
    "\t\t\treturn\n"
    "\t\tfi ;;\n"
    "\tesac\n"
    "\tCOMPREPLY=($(compgen -W \"$opts\" -- \"$cur\"))\n"
    "}\n"
    "complete -F _flint flint\n";

static const char completion_help[] =
    "usage: flint completion bash\n\n"
    "Prints a bash completion script for flint: verbs, each verb's options, and the\n"
    "names of the deployed functions (from `flint ls -o json`) where a verb takes NAME.\n"
    "Load it now with `source <(flint completion bash)`, or for good with\n"
    "`flint completion bash > /etc/bash_completion.d/flint`.\n";

int fl_cli__completion(fl_cli__ctx *c, int argc, char **argv)
{
	static const fl_cli__opt none[] = {{NULL, 0, 0, 0}};
	const char *shell = NULL, *val;
	fl_cli__args a;
	int id;

	fl_cli__args_init(&a, c, argc, argv, none);
	while ((id = fl_cli__next_opt(&a, &val)) != FL_CLI_ARG_END) {
		if (id == FL_CLI_ARG_ERR)
			return FL_CLI_USAGE;
		if (id == FL_CLI_ARG_HELP) {
			fputs(completion_help, stdout);
			return FL_CLI_OK;
		}
		if (shell)
			return fl_cli__usage_err(c, "unexpected argument \"%s\"", val);
		shell = val;
	}
	if (shell == NULL)
		return fl_cli__usage_err(c, "which shell? Only bash is supported: flint completion "
					    "bash");
	if (strcmp(shell, "bash") != 0)
		return fl_cli__usage_err(c, "no completion for \"%s\"; only bash is supported",
					 shell);
	fputs(bash_completion, stdout);
	return FL_CLI_OK;
}
