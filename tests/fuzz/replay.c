/* SPDX-License-Identifier: MIT */
/*
 * replay.c - a main() for a fuzz target without libFuzzer: feed each
 * file named on the command line (a directory: each file in it, in name
 * order) to LLVMFuzzerTestOneInput() once.  make check builds every
 * target with it, under ASan and UBSan, and replays the checked-in
 * corpus.  Prints the unit-test harness's closing line, "N passed, 0
 * failed", N being the inputs replayed; a bad input aborts the run.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int replayed;

static int one(const char *path)
{
	FILE *fp = fopen(path, "rb");
	uint8_t *p = NULL;
	long n;

	if (!fp || fseek(fp, 0, SEEK_END) || (n = ftell(fp)) < 0 ||
	    fseek(fp, 0, SEEK_SET)) {
		fprintf(stderr, "replay: cannot read '%s': %s\n", path, strerror(errno));
		if (fp)
			fclose(fp);
		return -1;
	}
	/* Exactly n bytes on the heap, so ASan sees reads past the end. */
	p = malloc(n ? (size_t)n : 1);
	if (!p || fread(p, 1, (size_t)n, fp) != (size_t)n) {
		fprintf(stderr, "replay: cannot read '%s'\n", path);
		free(p);
		fclose(fp);
		return -1;
	}
	fclose(fp);
	fprintf(stderr, "replay: %s\n", path);
	LLVMFuzzerTestOneInput(p, (size_t)n);
	free(p);
	replayed++;
	return 0;
}

static int byname(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

int main(int argc, char **argv)
{
	struct dirent **ents;
	struct stat st;
	char path[4096];
	int i, j, n, bad = 0;

	for (i = 1; i < argc; i++) {
		if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
			n = scandir(argv[i], &ents, NULL, byname);
			if (n < 0) {
				fprintf(stderr, "replay: cannot read '%s': %s\n", argv[i],
				    strerror(errno));
				bad++;
				continue;
			}
			for (j = 0; j < n; j++) {
				snprintf(path, sizeof(path), "%s/%s", argv[i], ents[j]->d_name);
				if (ents[j]->d_name[0] != '.' && stat(path, &st) == 0 &&
				    S_ISREG(st.st_mode) && one(path))
					bad++;
				free(ents[j]);
			}
			free(ents);
		} else if (one(argv[i])) {
			bad++;
		}
	}
	printf("%d passed, %d failed\n", replayed, bad);
	return bad ? 1 : 0;
}
