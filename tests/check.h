/* SPDX-License-Identifier: ISC */
/* Unit tests of dovetail's pure core, with check. */
#ifndef DOVETAIL_CHECK_H
#define DOVETAIL_CHECK_H

#include <check.h>

#include "dovetail.h"

Suite *suite_units(void);
Suite *suite_golden(void);
Suite *suite_control(void);
Suite *suite_status(void);
Suite *suite_acmestate(void);
Suite *suite_acme(void);
Suite *suite_jsonkeep(void);

char *test_read_file(const char *path);	/* new, or NULL */
const char *test_data_dir(void);

#endif
