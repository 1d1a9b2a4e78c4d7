/* SPDX-License-Identifier: ISC */
/*
 * jnode.c's one door to jansson, for swarm.c alone: the whole object
 * jansson parsed when json_keep could not copy it, as a jnode.
 */
#ifndef JNODE_H
#define JNODE_H

#include <jansson.h>

#include "dovetail.h"

/* Borrowed from the arena: valid until it is reset or freed. */
struct jnode *jnode_from_json(struct jarena *, json_t *);

#endif
