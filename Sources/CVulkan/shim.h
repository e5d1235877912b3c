#ifndef LOOPVK_CVULKAN_SHIM_H
#define LOOPVK_CVULKAN_SHIM_H
#include <vulkan/vulkan.h>

// Function-like macros are not imported into Swift: re-export them as constants/functions.
static const uint32_t LOOPVK_API_VERSION_1_0 = VK_API_VERSION_1_0;
static const uint32_t LOOPVK_API_VERSION_1_1 = VK_API_VERSION_1_1;
static const uint32_t LOOPVK_API_VERSION_1_2 = VK_API_VERSION_1_2;
static const uint32_t LOOPVK_API_VERSION_1_3 = VK_API_VERSION_1_3;
static inline uint32_t loopvk_make_api_version(uint32_t variant, uint32_t major, uint32_t minor, uint32_t patch) {
    return VK_MAKE_API_VERSION(variant, major, minor, patch);
}
static inline uint32_t loopvk_api_version_major(uint32_t v) { return VK_API_VERSION_MAJOR(v); }
static inline uint32_t loopvk_api_version_minor(uint32_t v) { return VK_API_VERSION_MINOR(v); }
static inline uint32_t loopvk_api_version_patch(uint32_t v) { return VK_API_VERSION_PATCH(v); }
#endif
