/*
 * standbys.h
 *		Which standbys count for 'replicated' (src/standbys.c).
 */
#ifndef DS_STANDBYS_H
#define DS_STANDBYS_H

extern void ds_standbys_init(void);
extern void ds_standbys_shmem_init(void);
extern bool ds_standbys_advance(void);

#endif							/* DS_STANDBYS_H */
