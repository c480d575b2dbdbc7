-- Whether a request for `model` counts against a limit on `selector` (NULL: no selector, every
-- model): a model name matches itself, a prefix ending in `*` every name it starts. The same
-- rule as governance::selector_matches, in one place for every query that reads a model's
-- spend (rebuilding a model budget's counter, its usage, its forecast).
CREATE FUNCTION tollgate_model_matches(model text, selector text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN selector IS NULL OR model = selector
        OR (right(selector, 1) = '*' AND starts_with(model, left(selector, -1)));
