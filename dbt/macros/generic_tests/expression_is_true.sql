{#
    Fails for every row where the SQL expression is false, like dbt_utils.expression_is_true
    (the project depends on no package). On a model: `expression: "a + b = total"`.
    On a column, the expression continues the column: `expression: ">= 0"`.
    A NULL result passes, as in dbt_utils: pair with not_null where NULL is wrong.
    Filter rows with the standard `config: {where: ...}`.
#}
{% test expression_is_true(model, expression, column_name=none) %}

{% set column_list = '*' if should_store_failures() else '1 as failing_row' %}

select {{ column_list }}
from {{ model }}
{% if column_name is none %}
where not ({{ expression }})
{%- else %}
where not ({{ column_name }} {{ expression }})
{%- endif %}

{% endtest %}
