"""GLSL shared by every shader: the vertex stage, helper functions and the fragment ``main``.

Each library shader defines ``vec3 shade(vec2 p)`` with ``p`` in about ``[-1, 1]^2``. It reads
its random uniforms from the per-instance globals:

* ``A``, ``B`` (vec4 in ``[0, 1)``): the shader's own parameters;
* ``C`` (vec4): colour palette phases (``C.xyz``) and frequency (``C.w``) used by :func:`pal`;
* ``OFF`` (vec2, about ``±100``): a random domain offset so noise shaders never repeat.

``main`` applies a random rotation and zoom (from ``T``) before calling ``shade``.
"""

VERTEX = """
#version 330
in vec2 in_corner;
in vec2 in_tile;
in vec4 in_a;
in vec4 in_b;
in vec4 in_c;
in vec4 in_t;
uniform vec2 u_tile;
uniform vec2 u_fb;
flat out vec2 v_origin;
flat out vec4 A;
flat out vec4 B;
flat out vec4 C;
flat out vec4 T;
void main() {
    v_origin = floor((in_tile + 1.0) * 0.5 * u_fb + 0.5);  // tile corner in whole pixels
    A = in_a; B = in_b; C = in_c; T = in_t;
    gl_Position = vec4(in_tile + in_corner * u_tile, 0.0, 1.0);
}
"""

HEADER = """
#version 330
flat in vec2 v_origin;
uniform vec2 u_size;
flat in vec4 A;
flat in vec4 B;
flat in vec4 C;
flat in vec4 T;
out vec4 f_color;
vec2 OFF;
const float PI = 3.14159265;
const float TAU = 6.28318531;

mat2 rot(float a) { float c = cos(a), s = sin(a); return mat2(c, s, -s, c); }
float hash12(vec2 p) {
    vec3 p3 = fract(vec3(p.xyx) * 0.1031);
    p3 += dot(p3, p3.yzx + 33.33);
    return fract((p3.x + p3.y) * p3.z);
}
vec2 hash22(vec2 p) {
    vec3 p3 = fract(vec3(p.xyx) * vec3(0.1031, 0.1030, 0.0973));
    p3 += dot(p3, p3.yzx + 33.33);
    return fract((p3.xx + p3.yz) * p3.zy);
}
vec3 hash32(vec2 p) {
    vec3 p3 = fract(vec3(p.xyx) * vec3(0.1031, 0.1030, 0.0973));
    p3 += dot(p3, p3.yxz + 33.33);
    return fract((p3.xxy + p3.yzz) * p3.zyx);
}
float vnoise(vec2 p) {
    vec2 i = floor(p), f = fract(p);
    vec2 u = f * f * (3.0 - 2.0 * f);
    return mix(mix(hash12(i), hash12(i + vec2(1, 0)), u.x),
               mix(hash12(i + vec2(0, 1)), hash12(i + vec2(1, 1)), u.x), u.y);
}
float gnoise(vec2 p) {
    vec2 i = floor(p), f = fract(p);
    vec2 u = f * f * (3.0 - 2.0 * f);
    vec2 g00 = hash22(i) * 2.0 - 1.0, g10 = hash22(i + vec2(1, 0)) * 2.0 - 1.0;
    vec2 g01 = hash22(i + vec2(0, 1)) * 2.0 - 1.0, g11 = hash22(i + vec2(1, 1)) * 2.0 - 1.0;
    float n = mix(mix(dot(g00, f), dot(g10, f - vec2(1, 0)), u.x),
                  mix(dot(g01, f - vec2(0, 1)), dot(g11, f - vec2(1, 1)), u.x), u.y);
    return 0.5 + 0.7 * n;
}
float fbm(vec2 p, int oct) {
    float s = 0.0, a = 0.5, norm = 0.0;
    mat2 m = mat2(1.6, 1.2, -1.2, 1.6);
    for (int i = 0; i < oct; i++) { s += a * vnoise(p); norm += a; p = m * p; a *= 0.5; }
    return s / norm;
}
float ridged(vec2 p, int oct) {
    float s = 0.0, a = 0.5, norm = 0.0;
    mat2 m = mat2(1.6, 1.2, -1.2, 1.6);
    for (int i = 0; i < oct; i++) {
        float n = 1.0 - abs(gnoise(p) * 2.0 - 1.0);
        s += a * n * n; norm += a; p = m * p; a *= 0.5;
    }
    return s / norm;
}
// Voronoi: x = F1, y = F2, zw = id of the nearest cell.
vec4 voronoi(vec2 p, float jitter) {
    vec2 i = floor(p), f = fract(p);
    float d1 = 8.0, d2 = 8.0; vec2 id = vec2(0);
    for (int y = -1; y <= 1; y++) for (int x = -1; x <= 1; x++) {
        vec2 g = vec2(x, y);
        vec2 o = hash22(i + g) * jitter;
        float d = length(g + o - f);
        if (d < d1) { d2 = d1; d1 = d; id = i + g; } else if (d < d2) { d2 = d; }
    }
    return vec4(d1, d2, id);
}
vec3 pal(float t) {
    return 0.5 + 0.5 * cos(TAU * (vec3(mix(0.5, 2.0, C.w) * t) + C.xyz));
}
vec3 pal2(float t) {
    return 0.5 + 0.5 * cos(TAU * (vec3(mix(0.3, 1.5, C.w) * t) + C.zxy + 0.25));
}
vec3 hsv(float h, float s, float v) {
    vec3 k = clamp(abs(mod(h * 6.0 + vec3(0, 4, 2), 6.0) - 3.0) - 1.0, 0.0, 1.0);
    return v * mix(vec3(1.0), k, s);
}
float sdBox(vec2 p, vec2 b) { vec2 d = abs(p) - b; return length(max(d, 0.0)) + min(max(d.x, d.y), 0.0); }
float smin(float a, float b, float k) {
    float h = clamp(0.5 + 0.5 * (b - a) / k, 0.0, 1.0);
    return mix(b, a, h) - k * h * (1.0 - h);
}
float aa(float d, float w) { return smoothstep(-w, w, d); }
"""

MAIN_RGB = """
void main() {
    OFF = (T.zw - 0.5) * 200.0;
    vec2 uv = (gl_FragCoord.xy - v_origin) / u_size;  // exact pixel centres, any tile position
    vec2 p = rot(T.x * TAU) * (uv * 2.0 - 1.0) * exp2(T.y * 1.2 - 0.6);
    f_color = vec4(clamp(shade(p), 0.0, 1.0), 1.0);
}
"""

MAIN_GRAY = """
void main() {
    OFF = (T.zw - 0.5) * 200.0;
    vec2 uv = (gl_FragCoord.xy - v_origin) / u_size;  // exact pixel centres, any tile position
    vec2 p = rot(T.x * TAU) * (uv * 2.0 - 1.0) * exp2(T.y * 1.2 - 0.6);
    f_color = vec4(dot(clamp(shade(p), 0.0, 1.0), vec3(0.299, 0.587, 0.114)), 0.0, 0.0, 1.0);
}
"""


def fragment_source(body: str, gray: bool) -> str:
    """Full fragment shader for one library shader body."""
    return HEADER + body + (MAIN_GRAY if gray else MAIN_RGB)
