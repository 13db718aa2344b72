/* SPDX-License-Identifier: Apache-2.0 */
/* The library's exported functions: it is built with hidden visibility, so
 * only what a public header marks EL_EXPORT is part of its ABI. */
#ifndef EL_EXPORT_H
#define EL_EXPORT_H

#define EL_EXPORT __attribute__((visibility("default")))

#endif
