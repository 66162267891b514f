build/obj/asan/tests/unit/test_common.o: tests/unit/test_common.c \
 shared/include/rt/common.h tests/unit/unit.h
shared/include/rt/common.h:
tests/unit/unit.h:
