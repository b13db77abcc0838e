"""Cellular and tiling shaders: Voronoi cells and edges, Worley stone, cracks, warped checkers,
hexagons, Truchet tiles, triangles, bricks, polka dots."""

SHADERS: dict[str, str] = {
    "voronoi_cells": """
vec3 shade(vec2 p) {
    vec4 v = voronoi(p * mix(1.5, 5.0, A.x) + OFF, mix(0.5, 1.0, A.y));
    vec3 col = pal(hash12(v.zw) * mix(0.5, 2.0, A.z));
    return col * mix(1.0, smoothstep(0.0, 0.12, v.y - v.x), A.w);
}
""",
    "voronoi_edges": """
vec3 shade(vec2 p) {
    vec4 v = voronoi(p * mix(1.5, 5.0, A.x) + OFF, 1.0);
    float e = smoothstep(0.0, mix(0.05, 0.3, A.y), v.y - v.x);
    return mix(pal2(v.x), pal(e), mix(0.5, 1.0, A.z));
}
""",
    "worley_stone": """
vec3 shade(vec2 p) {
    vec2 q = p * mix(1.0, 3.0, A.x) + OFF;
    float s = 0.0, a = 0.6;
    for (int i = 0; i < 3; i++) { s += a * voronoi(q, 1.0).x; q = q * 2.1 + 3.7; a *= 0.5; }
    return pal(pow(s, mix(0.5, 2.0, A.y)));
}
""",
    "cracks": """
vec3 shade(vec2 p) {
    vec2 q = p * mix(1.5, 4.0, A.x) + OFF;
    q += (vec2(fbm(q, 3), fbm(q + 7.1, 3)) - 0.5) * mix(0.2, 1.5, A.y);
    vec4 v = voronoi(q, 1.0);
    float crack = smoothstep(0.0, mix(0.03, 0.15, A.z), v.y - v.x);
    return pal(fbm(q * 2.0, 3)) * crack;
}
""",
    "checker_warp": """
vec3 shade(vec2 p) {
    vec2 q = p * mix(1.5, 5.0, A.x);
    q += (vec2(fbm(q * 0.5 + OFF, 3), fbm(q * 0.5 + OFF + 4.3, 3)) - 0.5) * mix(0.0, 3.0, A.y);
    vec2 s = sin(q * PI);
    float c = clamp(0.5 + s.x * s.y * mix(2.0, 20.0, A.z), 0.0, 1.0);
    return mix(pal(0.0), pal(0.5), c);
}
""",
    "hexagons": """
vec3 shade(vec2 p) {
    vec2 q = p * mix(1.5, 5.0, A.x) + OFF;
    const vec2 s = vec2(1.0, 1.7320508);
    vec4 hc = floor(vec4(q, q - vec2(0.5, 1.0)) / s.xyxy) + 0.5;
    vec4 h = vec4(q - hc.xy * s, q - (hc.zw + 0.5) * s);
    vec4 hx = dot(h.xy, h.xy) < dot(h.zw, h.zw) ? vec4(h.xy, hc.xy) : vec4(h.zw, hc.zw + 0.5);
    vec2 a = abs(hx.xy);
    float edge = 0.5 - max(dot(a, s * 0.5), a.x);
    vec3 col = pal(hash12(hx.zw * 7.3) * mix(0.3, 1.5, A.y));
    return col * smoothstep(0.0, mix(0.02, 0.15, A.z), edge);
}
""",
    "truchet": """
vec3 shade(vec2 p) {
    vec2 q = p * mix(1.5, 5.0, A.x) + OFF;
    vec2 id = floor(q), f = fract(q) - 0.5;
    if (hash12(id) < 0.5) f.x = -f.x;
    vec2 c = f.x > -f.y ? vec2(0.5) : vec2(-0.5);
    float d = abs(length(f - c) - 0.5);
    float w = mix(0.05, 0.25, A.y);
    return mix(pal(0.0), pal2(hash12(id + 3.0)), smoothstep(w, w * 0.5, d));
}
""",
    "triangles": """
vec3 shade(vec2 p) {
    vec2 q = p * mix(1.5, 5.0, A.x) + OFF;
    vec2 sk = vec2(q.x + q.y * 0.57735, q.y * 1.1547);
    vec2 id = floor(sk), f = fract(sk);
    float up = step(f.x + f.y, 1.0);
    vec3 col = pal(hash12(id * 2.0 + up) * mix(0.3, 1.5, A.y));
    float e = min(min(f.x, f.y), abs(1.0 - f.x - f.y));
    return col * smoothstep(0.0, mix(0.02, 0.1, A.z), e);
}
""",
    "bricks": """
vec3 shade(vec2 p) {
    vec2 q = p * vec2(mix(1.5, 4.0, A.x), mix(3.0, 8.0, A.y)) + OFF;
    q.x += 0.5 * mod(floor(q.y), 2.0);
    vec2 id = floor(q), f = fract(q);
    float m = mix(0.03, 0.15, A.z);
    float mortar = smoothstep(0.0, m, f.x) * smoothstep(0.0, m, 1.0 - f.x)
                 * smoothstep(0.0, m, f.y) * smoothstep(0.0, m, 1.0 - f.y);
    vec3 brick = pal(0.2 + 0.3 * hash12(id)) * (0.8 + 0.2 * vnoise(q * 6.0));
    return mix(pal2(0.9), brick, mortar);
}
""",
    "polka_dots": """
vec3 shade(vec2 p) {
    vec2 q = p * mix(1.5, 5.0, A.x) + OFF;
    vec2 id = floor(q), f = fract(q) - 0.5;
    vec2 o = (hash22(id) - 0.5) * mix(0.0, 0.4, A.y);
    float r = mix(0.1, 0.45, hash12(id + 1.7) * A.z + (1.0 - A.z) * 0.5);
    float d = length(f - o) - r;
    return mix(pal(hash12(id + 9.1)), pal2(0.3), smoothstep(-0.03, 0.03, d));
}
""",
}
