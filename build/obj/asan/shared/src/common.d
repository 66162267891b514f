build/obj/asan/shared/src/common.o: shared/src/common.c \
 shared/include/rt/common.h
shared/include/rt/common.h:
