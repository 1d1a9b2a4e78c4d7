/* SPDX-License-Identifier: ISC */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "check.h"

const char *
test_data_dir(void)
{
	const char *d = getenv("DOVETAIL_TEST_DATA");

	return d != NULL ? d : "tests/data";
}

char *
test_read_file(const char *path)
{
	struct buf b;
	char *cause;

	buf_init(&b);
	if (file_read(path, &b, &cause) == -1) {
		free(cause);
		buf_free(&b);
		return NULL;
	}
	return buf_steal(&b);
}

int
main(void)
{
	SRunner *sr;
	int failed;

	log_init(-1);	/* the tests provoke warnings on purpose */
	sr = srunner_create(suite_units());
	srunner_add_suite(sr, suite_golden());
	srunner_add_suite(sr, suite_control());
	srunner_add_suite(sr, suite_status());
	srunner_add_suite(sr, suite_acme());
	srunner_add_suite(sr, suite_acmestate());
	srunner_add_suite(sr, suite_jsonkeep());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
