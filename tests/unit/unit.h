/*
 * unit.h: the CUnit test runner's registration convention.
 *
 * Each tests/unit/test_NAME.c defines `void test_NAME_register(void)`, which
 * adds one or more CUnit suites.  The Makefile generates the list of suites
 * from the file names, so adding a file is all it takes.
 */
#ifndef RT_UNIT_H
#define RT_UNIT_H

#include <CUnit/CUnit.h>

/* Adds a suite named `name` with the NULL-terminated tests in `tests`. */
void unit_add_suite(const char *name, const CU_TestInfo *tests);

#define RT_UNIT_SUITE(name) void test_##name##_register(void);
#include "unit_suites.h"
#undef RT_UNIT_SUITE

#endif
