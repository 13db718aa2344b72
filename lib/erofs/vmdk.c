/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The VMDK descriptor of a merged image (docs/vm-runtime-contract.md): a twoGbMaxExtentFlat
 * disk whose flat extents are fsmeta.erofs and then each layer image, so a
 * guest sees their concatenation as one disk. QEMU silently skips RDONLY
 * extents, so they are RW; the runtime attaches the disk read-only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erofs-layer/merge.h"

#define SECTOR 512u
#define MAX_EXTENT_SECTORS 4194304u /* 2 GiB */

char *el_vmdk_descriptor(const struct el_vmdk_extent *ext, size_t n, uint32_t cid)
{
	char *buf = NULL;
	size_t len = 0;
	uint64_t total = 0;
	FILE *f;

	for (size_t i = 0; i < n; i++) {
		if (ext[i].path[0] != '/' || strpbrk(ext[i].path, "\"\n\r") || ext[i].bytes % SECTOR) {
			errno = EINVAL;
			return NULL;
		}
	}
	f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	fprintf(f, "# Disk DescriptorFile\nversion=1\nCID=%08x\nparentCID=ffffffff\n"
		   "createType=\"twoGbMaxExtentFlat\"\n\n# Extent description\n",
		cid);
	for (size_t i = 0; i < n; i++) {
		uint64_t sectors = ext[i].bytes / SECTOR;
		for (uint64_t off = 0; off < sectors; off += MAX_EXTENT_SECTORS) {
			uint64_t k = sectors - off < MAX_EXTENT_SECTORS ? sectors - off : MAX_EXTENT_SECTORS;
			fprintf(f, "RW %llu FLAT \"%s\" %llu\n", (unsigned long long)k, ext[i].path,
				(unsigned long long)off);
		}
		total += sectors;
	}
	fprintf(f, "\n# The Disk Data Base\n#DDB\n\nddb.virtualHWVersion = \"4\"\n"
		   "ddb.geometry.cylinders = \"%llu\"\nddb.geometry.heads = \"16\"\n"
		   "ddb.geometry.sectors = \"63\"\nddb.adapterType = \"ide\"\n",
		(unsigned long long)((total + 63 * 16 - 1) / (63 * 16)));
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}
